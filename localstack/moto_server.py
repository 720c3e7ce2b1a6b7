"""moto's server with its Kinesis shard made safe for concurrent puts, and cheap ones.

moto numbers a shard's records as "the last sequence number + 1" and says itself that
this "is not safe for concurrency": its server is threaded, so two PutRecord calls at
the same moment can take the same number and one record silently overwrites the other
(2 of 2,000 concurrent puts were lost here). Real Kinesis never loses an acknowledged
record, so the local stack takes the puts one at a time (a put is a dict insert).

moto also finds that last number by listing every key of the shard
(`list(records.keys())[-1]`), so each put costs as much as the shard is long: 20,000
puts into one shard took 4.85 s here, and the feed's stream grows by a record for every
paid order of a load test. The records are an OrderedDict in insertion order, so the
last key is read directly (0.23 s for the same 20,000), with the same answer.

moto's SQS deletes a message by rebuilding the queue's list of messages, after a first
pass over all of them to check the handle (`Queue.delete_message`): each delete costs
as much as the queue is long, and every message a consumer handles is deleted. Under a
backlog (the fault suite leaves thousands of messages behind a paused SQS), moto spent
its one core on deletes while sends and receives timed out, and the SDK's retries of
those made the backlog grow. The local stack finds the message in one pass and stops
there (the consumer deletes what it received last, near the front), with the same
answers: a handle deleted before is accepted again, an unknown one is refused.

moto's SQS also reads the clock through datetime arithmetic (`unix_time_millis`) for
every message each time it asks whether one is visible or delayed, and every send asks
that of every message in the queue three times over (the queue's approximate counts,
computed for its attributes). With a few thousand messages queued, one SendMessageBatch
took 230 ms here, nearly all of it in that clock. The local stack reads the same clock
(seconds since the epoch, in milliseconds) straight from `time.time()`: 3,000 messages
sent and consumed in 10 s instead of 268 s.

Everything else is moto's own server, with its own arguments.
"""

import sys
import threading
import time

from moto.kinesis.models import Shard
from moto.server import main
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue

_unsafe_put_record = Shard.put_record
_puts = threading.Lock()


def _put_record_one_at_a_time(self, *args, **kwargs):
    with _puts:
        return _unsafe_put_record(self, *args, **kwargs)


Shard.put_record = _put_record_one_at_a_time


def _last_sequence_number(self):
    return next(reversed(self.records), 0)


Shard.get_max_sequence_number = _last_sequence_number


def _delete_message_in_one_pass(self, receipt_handle):
    if receipt_handle in self.deleted_messages:
        return
    for index, message in enumerate(self._messages):
        if message.had_receipt_handle(receipt_handle):
            del self._messages[index]
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            return
    raise ReceiptHandleIsInvalid()


Queue.delete_message = _delete_message_in_one_pass


def _visible(self):
    return time.time() * 1000.0 > self.visible_at


def _delayed(self):
    return time.time() * 1000.0 < self.delayed_until


Message.visible = property(_visible)
Message.delayed = property(_delayed)

if __name__ == "__main__":
    sys.exit(main())
