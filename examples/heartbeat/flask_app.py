"""A Flask app with the heartbeat endpoint autoscalebot times (see docs/heartbeat-endpoint.md).

Run it: DATABASE_URL=postgres://... REDIS_URL=redis://... PORT=5000 python flask_app.py
"""

import logging
import os

import redis
from flask import Flask
from sqlalchemy import create_engine, text

app = Flask(__name__)
log = logging.getLogger(__name__)
# Heroku's DATABASE_URL says postgres://; SQLAlchemy wants the driver named.
database = create_engine(
    os.environ["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1),
    pool_pre_ping=True,
    connect_args={"connect_timeout": 2},
)
cache = redis.Redis.from_url(
    os.environ["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
)


@app.get("/autoscalebot/heartbeat/")
def heartbeat():
    """Does what a typical page does, and says 503 when a dependency is down."""
    headers = {"Cache-Control": "no-store", "Content-Type": "text/plain"}
    try:
        with database.connect() as connection:
            # Better still: the query your busiest page makes.
            connection.execute(text("SELECT 1"))
        cache.set("autoscalebot:heartbeat", "ok", ex=60)
        cache.get("autoscalebot:heartbeat")
    except Exception as error:
        log.warning("Heartbeat failed: %s", error)
        return "unavailable\n", 503, headers
    return "ok\n", 200, headers


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "5000")))
