// An Express app with the heartbeat endpoint autoscalebot times (see docs/heartbeat-endpoint.md).
//
// Run it: DATABASE_URL=postgres://... REDIS_URL=redis://... PORT=5000 node express_app.js

const express = require("express");
const { Pool } = require("pg");
const { createClient } = require("redis");

const database = new Pool({
  connectionString: process.env.DATABASE_URL,
  connectionTimeoutMillis: 2000,
});
const cache = createClient({
  url: process.env.REDIS_URL,
  // Fail at once while Redis is unreachable, rather than queue the command until it is back.
  disableOfflineQueue: true,
  socket: { connectTimeout: 2000 },
});
cache.on("error", (error) => console.warn("Redis:", error.message));

const app = express();

// Does what a typical page does, and says 503 when a dependency is down.
app.get("/autoscalebot/heartbeat/", async (request, response) => {
  response.set("Cache-Control", "no-store").type("text/plain");
  try {
    // Better still: the query your busiest page makes.
    await database.query("SELECT 1");
    await cache.set("autoscalebot:heartbeat", "ok", { EX: 60 });
    await cache.get("autoscalebot:heartbeat");
    response.send("ok\n");
  } catch (error) {
    console.warn("Heartbeat failed:", error.message);
    response.status(503).send("unavailable\n");
  }
});

cache.connect().then(() => {
  const port = Number(process.env.PORT || 5000);
  app.listen(port, process.env.HOST || "0.0.0.0", () => console.log(`Listening on ${port}`));
});
