"""Stands in for ``ssh`` in tests: ``fake_ssh.py [-o OPT ...] HOST COMMAND`` runs COMMAND
with ``sh`` in a session of its own — out of reach of the launcher's process-group
signals, as a remote process would be — and with this process's stdin, so it sees the
connection close exactly as a remote command does."""
import subprocess
import sys

if __name__ == "__main__":
    args = sys.argv[1:]
    while args and args[0].startswith("-"):
        args = args[2:] if args[0] in ("-o", "-p", "-i", "-l") else args[1:]
    host, command = args[0], " ".join(args[1:])
    sys.exit(subprocess.call(["sh", "-c", command], start_new_session=True))
