"""Content negotiation that answers with the first renderer when nothing else fits.

With DEBUG off the API has only the JSON renderer. DRF would then answer ``Accept: text/html``
(someone opening /api/rooms/ in a browser, a crawler) with 406; JSON is the more useful
answer, and what the README promises ("errors are JSON with a 4xx status")."""

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class FallbackContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            # (A format asked for by name, ?format=api, never gets here: DRF answers 404 for
            # it in filter_renderers.)
            return renderers[0], renderers[0].media_type
