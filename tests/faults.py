"""Fault injection on the wire: a TCP proxy in front of a real server that, when armed, lets a
chosen request through and then cuts the connection instead of passing the answer back (and calls
`on_drop`, which may kill the server). The write has landed; the client never hears so, and its
driver tries again on a new connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

READ = 256 * 1024


class AnswerDropper:
    def __init__(self, host: str, port: int, on_drop: Callable[[], Awaitable[None]] | None = None) -> None:
        self._target = (host, port)
        self._on_drop = on_drop
        self._server: asyncio.Server | None = None
        self._armed: list[tuple[bytes, ...]] = []
        self.dropped = 0
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def drop_answer_to(self, *markers: bytes) -> None:
        """The next request holding every marker goes through; its answer is not passed back."""
        self._armed.append(markers)

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(*self._target)
        except OSError:  # the server is down (being restarted): so is this connection
            client_out.transport.abort()
            return
        cut = asyncio.Event()

        async def upstream() -> None:
            while chunk := await client_in.read(READ):
                for markers in list(self._armed):
                    if all(marker in chunk for marker in markers):
                        self._armed.remove(markers)
                        cut.set()  # the answer to this one never reaches the client
                        break
                server_out.write(chunk)
                await server_out.drain()

        async def downstream() -> None:
            while chunk := await server_in.read(READ):
                if cut.is_set():
                    self.dropped += 1
                    if self._on_drop is not None:
                        await self._on_drop()
                    return
                client_out.write(chunk)
                await client_out.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_out, server_out):
            writer.transport.abort()
