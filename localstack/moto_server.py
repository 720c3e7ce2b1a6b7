"""moto's server with its Kinesis shard made safe for concurrent puts.

moto numbers a shard's records as "the last sequence number + 1" and says itself that
this "is not safe for concurrency": its server is threaded, so two PutRecord calls at
the same moment can take the same number and one record silently overwrites the other
(2 of 2,000 concurrent puts were lost here). Real Kinesis never loses an acknowledged
record, so the local stack takes the puts one at a time (a put is a dict insert). Everything else is
moto's own server, with its own arguments.
"""

import sys
import threading

from moto.kinesis.models import Shard
from moto.server import main

_unsafe_put_record = Shard.put_record
_puts = threading.Lock()


def _put_record_one_at_a_time(self, *args, **kwargs):
    with _puts:
        return _unsafe_put_record(self, *args, **kwargs)


Shard.put_record = _put_record_one_at_a_time

if __name__ == "__main__":
    sys.exit(main())
