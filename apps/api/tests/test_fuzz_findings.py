"""What the schemathesis run (fuzz/) found, pinned as unit tests."""

import pytest


@pytest.mark.parametrize(
    "url",
    [
        "/api/nothing%0A/",
        "/api/rooms/x%0Ay/",
        "/api/rooms/%C2%A2L%0B/messages/A%C2%B8Q%F1%A5%A1%AD%0A%C3%81/",
    ],
)
@pytest.mark.parametrize("method", ["get", "patch"])
def test_a_path_with_a_newline_is_a_json_404(as_alice, method, url):
    """The catch-all route's "." did not match a newline: Django's HTML 404 page answered."""
    response = getattr(as_alice, method)(url, {}, format="json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
