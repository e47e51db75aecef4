"""A FastAPI app with the heartbeat endpoint autoscalebot times (see docs/heartbeat-endpoint.md).

Run it: DATABASE_URL=postgres://... REDIS_URL=redis://... PORT=5000 python fastapi_app.py
"""

import logging
import os

import redis.asyncio as redis
import uvicorn
from fastapi import FastAPI, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

app = FastAPI()
log = logging.getLogger(__name__)
# Heroku's DATABASE_URL says postgres://; SQLAlchemy wants the driver named.
database = create_async_engine(
    os.environ["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1),
    pool_pre_ping=True,
    connect_args={"connect_timeout": 2},
)
cache = redis.Redis.from_url(
    os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
)


@app.get("/autoscalebot/heartbeat/")
async def heartbeat() -> Response:
    """Does what a typical page does, and says 503 when a dependency is down."""
    headers = {"Cache-Control": "no-store"}
    try:
        async with database.connect() as connection:
            # Better still: the query your busiest page makes.
            await connection.execute(text("SELECT 1"))
        await cache.set("autoscalebot:heartbeat", "ok", ex=60)
        await cache.get("autoscalebot:heartbeat")
    except Exception as error:
        log.warning("Heartbeat failed: %s", error)
        return Response("unavailable\n", 503, headers, media_type="text/plain")
    return Response("ok\n", 200, headers, media_type="text/plain")


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "5000")))
