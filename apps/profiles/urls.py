from django.urls import path

from . import views

app_name = "profiles"

urlpatterns = [
    path("", views.profile_list, name="list"),
    path("me/edit/", views.profile_edit, name="edit"),
]
