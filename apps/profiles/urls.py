from django.urls import path

from . import bot_views, views

app_name = "profiles"

urlpatterns = [
    path("", views.profile_list, name="list"),
    path("me/edit/", views.profile_edit, name="edit"),
]

urlpatterns += [
    path("bots/", bot_views.bot_list, name="bots"),
    path("bots/<int:bot_id>/", bot_views.bot_detail, name="bot_detail"),
    path("bots/<int:bot_id>/tokens/", bot_views.bot_token_create, name="bot_token_create"),
    path(
        "bots/<int:bot_id>/tokens/<int:token_id>/revoke/",
        bot_views.bot_token_revoke,
        name="bot_token_revoke",
    ),
    path("bots/<int:bot_id>/delete/", bot_views.bot_delete, name="bot_delete"),
]
