"""DRF's JSON parser with a guard it lacks."""

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """Deeply nested input (``[[[[…]]]]``) makes ``json`` raise ``RecursionError``, which is not a
    ``ValueError`` and would escape DRF as a 500; here it is a 400 like any malformed JSON.

    (The size cap needs nothing here: DRF reads JSON through ``request.body``, which enforces
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``; the exception handler turns that into a JSON 413.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply.")) from None
