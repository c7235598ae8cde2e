import os

from django.core.wsgi import get_wsgi_application

from config.middleware import ChunkedBodyWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# Chunked request bodies are read (and held to the size limits): see ChunkedBodyWSGI.
application = ChunkedBodyWSGI(get_wsgi_application())
