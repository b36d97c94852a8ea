"""Scenario b: a trivial FastAPI route, served by uvicorn; also called in-process as an ASGI app."""

import counter
from fastapi import FastAPI

app = FastAPI()


@app.get("/users/{uid}")
async def user(uid: int):
    counter.handled += 1
    return {"id": uid}
