from django.apps import AppConfig


class QueConfig(AppConfig):
    """The app that gives a Django project `manage.py que ...`."""

    name = "que.contrib.django"
    label = "que"
    verbose_name = "que job queue"
