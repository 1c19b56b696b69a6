from django.contrib import admin

from .models import Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name", "updated_at"]
    search_fields = ["user__username", "display_name"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    # Uploads go through services.avatar_process only (re-encoded, metadata stripped).
    readonly_fields = ["avatar", "updated_at"]
