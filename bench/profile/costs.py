"""The costs of a folded perf profile (inferno-collapse-perf): by thread, and by what the
sampled code was (each sample counted once, at its innermost frame)."""
import collections
import re
import sys

rows = []
for line in open(sys.argv[1]):
    stack, count = line.rsplit(" ", 1)
    rows.append((stack.split(";"), int(count)))
total = sum(n for _, n in rows) or 1


def share(n):
    return f"{100 * n / total:5.1f} %"


threads = collections.Counter()
for stack, n in rows:
    threads[re.sub(r"[-_]?\d+$", "", stack[0])] += n
print("by thread:")
for name, n in threads.most_common(6):
    print(f"  {share(n)}  {name}")

KERNEL = re.compile(
    r"^(finish_task_switch|_raw_spin|schedule|futex|__x64_sys|do_syscall|syscall|entry_SYSCALL"
    r"|irqentry|exit_to_user|_copy|copy_|tcp_|ip_|sock|__sys|ksys|vfs|ext4|posix_lock|fcntl_)"
)
SQLITE = re.compile(r"^(sqlite3|pcache|btree|pager|vdbe|wal|walChecksum)", re.I)


def what(frame):
    if KERNEL.match(frame) or frame.endswith("_[k]"):
        return "kernel (scheduling, futex wake-ups, sockets, file I/O)"
    if SQLITE.match(frame):
        return "SQLite (C)"
    if frame.startswith(("_mi_", "mi_", "_int_malloc", "malloc", "free", "cfree")):
        return "allocator"
    if re.search(r"mem(cpy|move|set|cmp)", frame):
        return "memcpy/memmove"
    m = re.match(r"^<?&?(?:mut )?(?:dyn )?([a-z_][a-z_0-9]*)::", frame)
    return f"crate {m.group(1)}" if m else "other"


kinds = collections.Counter()
for stack, n in rows:
    kinds[what(stack[-1])] += n
print("by innermost frame:")
for name, n in kinds.most_common(16):
    print(f"  {share(n)}  {name}")


def inclusive(pattern):
    r = re.compile(pattern)
    return sum(n for stack, n in rows if any(r.search(f) for f in stack))


print("inclusive:")
for name, pattern in [
    ("flume channel sends to the SQLite worker threads", r"flume::Shared<T>::send"),
    ("futex system calls", r"__x64_sys_futex"),
    ("session record decoding (MessagePack)", r"rmp_serde::decode"),
    ("session record encoding", r"rmp_serde::encode|record::encode"),
    ("session ID hashing (SHA-256)", r"record::storage_key"),
    ("the cart's JSON conversions", r"Contents::(set_)?cart|cart_items_of"),
]:
    print(f"  {share(inclusive(pattern))}  {name}")

calls = collections.Counter()
for stack, n in rows:
    if what(stack[-1]).startswith("kernel"):
        call = next((f for f in stack if f.startswith("__x64_sys_")), None)
        calls[call.removeprefix("__x64_sys_").removesuffix("_[k]") if call else "(no system call: interrupts, scheduling)"] += n
print("kernel time by system call:")
for name, n in calls.most_common(8):
    print(f"  {share(n)}  {name}")
