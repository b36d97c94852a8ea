"""The FastAPI shop of the acceptance test: SQLAlchemy over asyncpg, psycopg, redis asyncio,
httpx and aiohttp calls to the partner service, a Celery task, a websocket and a route that
raises. Configured by SQLALCHEMY_URL, DATABASE_DSN (libpq), REDIS_URL, PARTNER_URL and
CELERY_BROKER."""

import logging
import os
from contextlib import asynccontextmanager

import aiohttp
import httpx
import psycopg
import redis.asyncio
from fastapi import FastAPI, WebSocket
from jobs import ship
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

engine = create_async_engine(os.environ["SQLALCHEMY_URL"])
cache = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
PARTNER = os.environ["PARTNER_URL"]
log = logging.getLogger("shop")


@asynccontextmanager
async def lifespan(app):
    # The pool's first connection runs the dialect's set-up queries; made here, they stay
    # out of the first request's trace.
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/orders/{order_id}")
async def order(order_id: int):
    async with engine.connect() as connection:
        item = (await connection.execute(text("SELECT item FROM orders WHERE id = :id"), {"id": order_id})).scalar()
    async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_DSN"]) as database:
        cursor = await database.execute("SELECT count(*) FROM orders WHERE item = %s", (item,))
        (same,) = await cursor.fetchone()
    await cache.set(f"order:{order_id}", item)
    cached = (await cache.get(f"order:{order_id}")).decode()
    log.warning("order %s is %s", order_id, item)
    return {"item": cached, "same": same}


@app.get("/partners")
async def partners():
    async with httpx.AsyncClient() as client:
        first = (await client.get(f"{PARTNER}/greet?via=httpx")).json()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{PARTNER}/greet?via=aiohttp") as response:
            second = await response.json()
    return [first, second]


@app.get("/ship/{order_id}")
async def ship_order(order_id: int):
    ship.delay(order_id)
    return {"queued": order_id}


@app.get("/boom")
async def boom():
    raise RuntimeError("exploded")


@app.get("/healthz")
async def healthz():
    return "ok"


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text((await websocket.receive_text()).upper())
    await websocket.close()
