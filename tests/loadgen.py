"""A bounded load generator for the gateway tests: aiohttp, a fixed request rate spread over several base URLs
(replicas) and instruments, every response recorded (time sent and received, status, version, generation)."""

import asyncio
import itertools
import json
import threading
import time


class Load:
    "Send `rate` requests/s (round robin over `urls` × `instruments`) until stopped or `max_seconds`; record everything."

    def __init__(self, urls, instruments, rate=250.0, max_seconds=180.0, concurrency=64):
        self.urls, self.instruments, self.rate, self.max_seconds, self.conc = (
            list(urls),
            list(instruments),
            rate,
            max_seconds,
            concurrency,
        )
        self.records, self._stop, self.thread = [], threading.Event(), None

    async def _one(self, session, url, inst):
        t0 = time.time()
        try:
            async with session.get(f"{url}/v1/signal/{inst}") as r:
                body = await r.read()
                status = r.status
            try:
                j = json.loads(body)
            except ValueError:
                j = {}
            self.records.append(
                dict(
                    url=url,
                    instrument=inst,
                    sent=t0,
                    received=time.time(),
                    status=status,
                    version=j.get('version'),
                    generation=j.get('generation'),
                    fallback=j.get('fallback_from'),
                    error=None if status == 200 else j.get('error', body[:200]),
                )
            )
        except Exception as e:  # a refused or reset connection is a failed request
            self.records.append(
                dict(
                    url=url,
                    instrument=inst,
                    sent=t0,
                    received=time.time(),
                    status=0,
                    version=None,
                    generation=None,
                    fallback=None,
                    error=f"{type(e).__name__}: {e}",
                )
            )

    async def _run(self):
        import aiohttp

        sem = asyncio.Semaphore(self.conc)
        pending = set()
        targets = itertools.cycle([(u, i) for i in self.instruments for u in self.urls])
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10), connector=aiohttp.TCPConnector(limit=self.conc)
        ) as s:
            start = time.monotonic()
            n = 0
            while not self._stop.is_set() and time.monotonic() - start < self.max_seconds:
                due = start + n / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                u, i = next(targets)
                n += 1

                async def go(u=u, i=i):
                    async with sem:
                        await self._one(s, u, i)

                t = asyncio.ensure_future(go())
                pending.add(t)
                t.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=15)

    def __enter__(self):
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.thread.join(timeout=30)

    def summary(self) -> dict:
        r = self.records
        if not r:
            return dict(requests=0, failed=0, rate=0.0)
        span = max(x['sent'] for x in r) - min(x['sent'] for x in r)
        return dict(
            requests=len(r),
            failed=sum(x['status'] != 200 for x in r),
            rate=len(r) / span if span > 0 else float('nan'),
            fallbacks=sum(bool(x['fallback']) for x in r),
        )
