"""T0, the floor: a minimal raw ``websockets`` broadcast server in one process.

Every text frame a client sends is sent, unchanged, to every client connected to the same path
(the "room"), the sender included. No auth, no persistence, no channel layer.

    python bench/targets/t0_raw.py --port 8301
"""

import argparse
import asyncio
from collections import defaultdict

from websockets.asyncio.server import broadcast, serve

rooms: defaultdict[str, set] = defaultdict(set)


async def handler(ws) -> None:
    room = rooms[ws.request.path]
    room.add(ws)
    try:
        async for message in ws:
            broadcast(room, message)
    finally:
        room.discard(ws)


async def main(host: str, port: int) -> None:
    async with serve(handler, host, port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
