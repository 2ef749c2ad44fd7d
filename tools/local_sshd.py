"""A throw-away SSH server on this machine, to check ``launch.py --launcher ssh`` with the
real OpenSSH client where no sshd runs (as on the development machine).

    python -m venv /tmp/sshvenv && /tmp/sshvenv/bin/pip install -r requirements-sshcheck.txt
    /tmp/sshvenv/bin/python tools/local_sshd.py --folder /tmp/sshd &
    printf "127.0.0.1\\n127.0.0.1\\n" > /tmp/sshd/hosts
    python launch.py -n 2 -s 1 --launcher ssh -H /tmp/sshd/hosts \\
        --ssh-command "ssh -p 2222 -i /tmp/sshd/client_key -o StrictHostKeyChecking=no \\
                       -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR" \\
        python test.py --kv-store dist_sync ...

It accepts the one client key it writes to ``FOLDER/client_key``; each session runs its
command with ``sh`` in a session of its own (out of reach of the launcher's signals, like
a remote process), with stdin, stdout and the exit status passed through the channel.
"""
import argparse
import asyncio
import os

import asyncssh


async def run_session(process):
    child = await asyncio.create_subprocess_shell(
        process.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    await process.redirect(stdin=child.stdin, stdout=child.stdout)
    code = await child.wait()
    process.exit(code if code >= 0 else 255)


async def serve(folder, port):
    os.makedirs(folder, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(os.path.join(folder, "host_key"))
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(os.path.join(folder, "client_key"))
    os.chmod(os.path.join(folder, "client_key"), 0o600)
    client_key.write_public_key(os.path.join(folder, "authorized_keys"))
    await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", port,
        server_host_keys=[os.path.join(folder, "host_key")],
        authorized_client_keys=os.path.join(folder, "authorized_keys"),
        process_factory=run_session)
    print("ssh server on 127.0.0.1:%d; client key %s" % (port, os.path.join(folder, "client_key")),
          flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", default="/tmp/sshd", help="where keys are written")
    p.add_argument("--port", type=int, default=2222)
    args = p.parse_args()
    asyncio.run(serve(args.folder, args.port))
