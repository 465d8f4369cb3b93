#!/usr/bin/env python3
"""delayrelay — TCP relays that delay every chunk in both directions by a
normally distributed time (mean and deviation in ms), keeping order.

Used by the multi-host test where the kernel has no netem qdisc:
  delayrelay.py MEAN_MS DEV_MS LISTEN_HOST:PORT=TARGET_HOST:PORT ...
Runs until killed.
"""
import asyncio
import random
import sys


async def pump(reader, writer, mean, dev):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    last = 0.0

    async def sender():
        while True:
            at, data = await queue.get()
            if data is None:
                break
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            at = max(last, loop.time() + max(0.0, random.gauss(mean, dev)) / 1000.0)
            last = at
            await queue.put((at, data))
    except (ConnectionError, OSError):
        pass
    await queue.put((0, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def relay(listen, target, mean, dev):
    lh, lp = listen.rsplit(":", 1)
    th, tp = target.rsplit(":", 1)

    async def handle(cr, cw):
        try:
            tr, tw = await asyncio.open_connection(th, int(tp))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, tw, mean, dev), pump(tr, cw, mean, dev))

    server = await asyncio.start_server(handle, lh, int(lp))
    async with server:
        await server.serve_forever()


async def main():
    mean, dev = float(sys.argv[1]), float(sys.argv[2])
    await asyncio.gather(*(relay(*spec.split("="), mean, dev) for spec in sys.argv[3:]))


if __name__ == "__main__":
    asyncio.run(main())
