"""`path("que/", include("que.contrib.django.urls"))`: the dashboard, for the project's staff."""

from django.urls import re_path

from que.contrib.django.views import view

app_name = "que"
urlpatterns = [re_path(r"^(?P<path>.*)$", view, name="dashboard")]
