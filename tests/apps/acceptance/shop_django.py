"""The Django shop of the acceptance test: a view that queries PostgreSQL (psycopg2), uses
the redis cache and calls the partner service with requests; a view that raises. Served
as `shop_django:wsgi` (gunicorn) or `shop_django:asgi` (uvicorn)."""

import logging
import os

import requests
from django.core.asgi import get_asgi_application
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import path

log = logging.getLogger("shop")


def order(request, order_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT item FROM orders WHERE id = %s", [order_id])
        (item,) = cursor.fetchone()
    cache.set(f"order:{order_id}", item)
    cached = cache.get(f"order:{order_id}")
    greeting = requests.get(f"{os.environ['PARTNER_URL']}/greet?via=requests", timeout=10).json()
    log.warning("order %s is %s", order_id, item)
    return JsonResponse({"item": cached, "greeting": greeting})


def boom(request):
    raise RuntimeError("exploded")


def healthz(request):
    return HttpResponse("ok")


urlpatterns = [path("orders/<int:order_id>", order), path("boom", boom), path("healthz", healthz)]
asgi = get_asgi_application()
wsgi = get_wsgi_application()
