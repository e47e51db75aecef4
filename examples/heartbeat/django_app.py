"""A Django project in one file, with the heartbeat endpoint autoscalebot times (see
docs/heartbeat-endpoint.md). In a real project the settings go to settings.py, the view to
views.py and the URL to urls.py.

Run it: DATABASE_URL=postgres://... REDIS_URL=redis://... PORT=5000 python django_app.py
"""

import logging
import os
import sys

import dj_database_url
from django.conf import settings

# settings.py
DATABASES = {"default": dj_database_url.config(conn_max_age=60)}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_URL"],
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY=os.environ.get("SECRET_KEY", "example-only"),
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES=DATABASES,
    CACHES=CACHES,
)

# views.py
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.views.decorators.cache import never_cache  # noqa: E402

log = logging.getLogger(__name__)


@never_cache
def heartbeat(request):
    """Does what a typical page does, and says 503 when a dependency is down."""
    try:
        with connection.cursor() as cursor:
            # Better still: the query your busiest page makes, through the ORM.
            cursor.execute("SELECT 1")
        cache.set("autoscalebot:heartbeat", "ok", 60)
        cache.get("autoscalebot:heartbeat")
    except Exception as error:
        log.warning("Heartbeat failed: %s", error)
        return HttpResponse("unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")


# urls.py
from django.urls import path  # noqa: E402

urlpatterns = [path("autoscalebot/heartbeat/", heartbeat)]


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    address = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
    execute_from_command_line([sys.argv[0], "runserver", address, "--noreload"])
