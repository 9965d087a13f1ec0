"""A one-file Django project behind a TLS terminator: it trusts
X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER) and redirects plain HTTP to
HTTPS (SECURE_SSL_REDIRECT), as a Django app behind a load balancer is set up.
Run: gunicorn --chdir test/app/django secureapp:application
"""
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="shardgate-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.security.SecurityMiddleware"],
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_SSL_REDIRECT=True,
    USE_X_FORWARDED_HOST=True,
)


def whoami(request):
    return HttpResponse(
        "secure=%s host=%s\n" % (request.is_secure(), request.get_host()),
        content_type="text/plain",
    )


urlpatterns = [path("", whoami), path("whoami", whoami)]

application = get_wsgi_application()
