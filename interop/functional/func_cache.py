# Copyright (c) rowsync authors. Apache-2.0, like Swift.
"""An in-process stand-in for memcached, as a proxy-server.conf filter.

Swift's proxy needs a memcache: tempauth keeps its tokens there (without
one no request authenticates), ratelimit counts in it, and the proxy caches
account and container info in it (``recheck_*_existence``), which is what
Swift's functional tests are written against (SAIO runs memcached). The
harness runs one proxy process (``workers = 0``), so a dict in that process
is the whole cache: no memcached daemon to install, start and stop.

It keeps memcached's semantics where the proxy can see them: expiry times
(``time`` <= 30 days is relative, larger is a Unix time), ``incr`` creating
a missing key, ``decr`` never going below 0, values kept as given (the
proxy's ``serialize`` only matters for the wire format).

proxy-server.conf::

    [filter:cache]
    paste.filter_factory = func_cache:filter_factory

with this directory on PYTHONPATH.
"""

import copy
import threading
import time

THIRTY_DAYS = 30 * 24 * 60 * 60


class MemoryCache(object):
    def __init__(self):
        self._data = {}
        self._lock = threading.Lock()

    @staticmethod
    def _expiry(t):
        t = int(t or 0)
        if t <= 0:
            return None
        if t > THIRTY_DAYS:
            return float(t)
        return time.time() + t

    def _live(self, key):
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and time.time() >= expires:
            del self._data[key]
            return None
        return item

    def set(self, key, value, serialize=True, time=0, min_compress_len=0,
            raise_on_error=False):
        with self._lock:
            self._data[key] = (copy.deepcopy(value), self._expiry(time))

    def get(self, key, raise_on_error=False):
        with self._lock:
            item = self._live(key)
            return None if item is None else copy.deepcopy(item[0])

    def incr(self, key, delta=1, time=0):
        with self._lock:
            item = self._live(key)
            if item is None:
                value = max(int(delta), 0)
                self._data[key] = (value, self._expiry(time))
                return value
            value = max(int(item[0]) + int(delta), 0)
            self._data[key] = (value, item[1])
            return value

    def decr(self, key, delta=1, time=0):
        return self.incr(key, delta=-delta, time=time)

    def delete(self, key, server_key=None):
        with self._lock:
            self._data.pop(key, None)

    def set_multi(self, mapping, server_key, serialize=True, time=0,
                  min_compress_len=0):
        for key, value in mapping.items():
            self.set(key, value, time=time)

    def get_multi(self, keys, server_key):
        return [self.get(key) for key in keys]


_CACHE = MemoryCache()


class CacheMiddleware(object):
    def __init__(self, app):
        self.app = app
        self.memcache = _CACHE

    def __call__(self, env, start_response):
        env['swift.cache'] = self.memcache
        return self.app(env, start_response)


def filter_factory(global_conf, **local_conf):
    return CacheMiddleware
