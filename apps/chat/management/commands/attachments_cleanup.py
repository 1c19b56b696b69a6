"""``manage.py attachments_cleanup [--dry-run]``: delete the uploads never sent within
``PARLEY_ATTACHMENT_UNSENT_TTL`` seconds (rows and stored files). Schedule it hourly (README,
"Attachments")."""

from django.core.management.base import BaseCommand

from apps.chat.attachments import attachments_cleanup


class Command(BaseCommand):
    help = "Delete unsent attachment uploads older than PARLEY_ATTACHMENT_UNSENT_TTL."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only say how many would be deleted."
        )

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        count = attachments_cleanup(dry_run=dry_run)
        noun = "upload" if count == 1 else "uploads"
        if dry_run:
            self.stdout.write(f"Would delete {count} unsent {noun}.")
        else:
            self.stdout.write(f"Deleted {count} unsent {noun}.")
