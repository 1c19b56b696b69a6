"""schemathesis hooks for the fuzz suite (``SCHEMATHESIS_HOOKS=fuzz.hooks``, set by
fuzz/test_api.py; the CLI imports this module in its own process).

Every call is authenticated as the user whose token is in ``PARLEY_FUZZ_TOKEN``. Two
operations would otherwise end the run's authentication for good, so they are steered:

- ``DELETE /api/auth/token/`` revokes the token that makes the call: it is made with a spare
  token of the same user (``PARLEY_FUZZ_SPARE_TOKENS``, one per call, the last one again when
  they run out: by then a revoked token's 401);
- ``DELETE /api/tokens/{id}/`` with the run's own token id (``PARLEY_FUZZ_TOKEN_ID``) gets an
  id nobody has instead (the same documented 404 as any unknown id).
"""

import json
import os

import schemathesis

TOKEN = os.environ.get("PARLEY_FUZZ_TOKEN", "")
TOKEN_ID = int(os.environ.get("PARLEY_FUZZ_TOKEN_ID", "0"))
SPARE_TOKENS = json.loads(os.environ.get("PARLEY_FUZZ_SPARE_TOKENS", "[]"))
UNKNOWN_ID = 2**62


@schemathesis.hook
def before_call(context, case, kwargs):
    token = TOKEN
    operation = case.operation
    if operation.method.upper() == "DELETE" and operation.path == "/api/auth/token/":
        token = SPARE_TOKENS.pop(0) if len(SPARE_TOKENS) > 1 else SPARE_TOKENS[0]
    # str(): the coverage phase sends path parameters as text too ("1").
    own = str((case.path_parameters or {}).get("id")) == str(TOKEN_ID)
    if operation.method.upper() == "DELETE" and operation.path == "/api/tokens/{id}/" and own:
        case.path_parameters = {**case.path_parameters, "id": UNKNOWN_ID}
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
