#!/usr/bin/env python3
"""Runs in the `vpc` namespace: a TCP relay from the router's address in the private-ip site's
subnet to the EC2 model, which listens on loopback only (tests/support/faultproxy.py refuses
anything else).

    relay.py --listen 10.21.1.1 --port 5001 --to 127.0.0.1:PORT

The members reach EC2 at http://10.21.1.1:5001, as through a VPC interface endpoint; the library
keeps its connections alive, so the relay adds a copy, not a connection, per request. Prints
"READY" once listening.
"""

import argparse
import asyncio
import signal
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--to", required=True, help="HOST:PORT")
    a = p.parse_args()
    host, port = a.to.rsplit(":", 1)

    async def handle(c_reader, c_writer):
        try:
            u_reader, u_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            c_writer.close()
            return
        await asyncio.gather(pipe(c_reader, u_writer), pipe(u_reader, c_writer))

    server = await asyncio.start_server(handle, a.listen, a.port, backlog=256)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: sys.exit(0))
    print("READY", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, SystemExit):
        pass
