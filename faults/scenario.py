"""Building blocks of the cases: clients for a room layout, starting them, bounded waits."""

import asyncio
import os
import time
import uuid

from .chatclient import ChatClient, Servers


def scale(name: str, default: float) -> float:
    """FAULTS_<NAME> overrides a size or rate (e.g. FAULTS_LOAD_MESSAGES=20000)."""
    return float(os.environ.get(f"FAULTS_{name}", default))


def prefix(case: str) -> str:
    return f"{case}-{uuid.uuid4().hex[:6]}"


def make_clients(
    fixtures: dict, *, per_room: int, urls: list[str], spread: int | None = None, **options
) -> list[ChatClient]:
    """``per_room`` clients in each room, one user each, spread round-robin over the first
    ``spread`` servers (all of ``urls`` remain the fail-over list)."""
    spread = spread or len(urls)
    users = iter(fixtures["users"])
    clients = []
    for r, room in enumerate(fixtures["rooms"]):
        for j in range(per_room):
            user = next(users)
            n = r * per_room + j
            clients.append(
                ChatClient(
                    name=f"{user['username']}",
                    session=user["session"],
                    room=room["id"],
                    servers=Servers(urls),
                    start=n % spread,
                    **options,
                )
            )
    return clients


async def start(clients: list[ChatClient], timeout: float = 30) -> None:
    for client in clients:
        client.begin()
    await wait_all_connected(clients, timeout)


async def wait_all_connected(clients: list[ChatClient], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        for client in clients:
            await client.connected.wait()


async def stop(clients: list[ChatClient]) -> None:
    await asyncio.gather(*(client.stop() for client in clients), return_exceptions=True)


async def at(t0: float, offset: float) -> None:
    """Sleep until ``offset`` seconds after ``t0`` (monotonic)."""
    delay = t0 + offset - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
