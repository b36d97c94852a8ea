"""Settings of the Django shop: PostgreSQL through psycopg2, the redis cache."""

import os
import sys

# The app's venv also holds psycopg 3 (for the FastAPI shop), which Django's PostgreSQL
# backend would prefer; this app is the psycopg2 one.
sys.modules["psycopg"] = None

DEBUG = False
SECRET_KEY = "acceptance"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "shop_django"
MIDDLEWARE = []
INSTALLED_APPS = []
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING_CONFIG = None
DSN = dict(part.split("=") for part in os.environ["DATABASE_DSN"].split())
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        **{key: DSN[part] for key, part in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("NAME", "dbname"))},
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"]}}
