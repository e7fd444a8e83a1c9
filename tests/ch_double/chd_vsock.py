"""chd_vsock.py: cloud-hypervisor's hybrid vsock on a unix socket, bridged to the guest's virtio-serial port.

CH (virtio-devices/src/vsock/unix/muxer.rs): a host client connects to the vsock socket and writes
"CONNECT <port>\\n" (the keyword in any case, the port trimmed); once the guest accepted the stream CH
answers "OK <host-side port>\\n" (ports allocated from 2^30 up) and relays bytes both ways. A bad
command, or a port nobody listens on in the guest (the guest answers RST), closes the stream without
an answer. Here the guest side is a QEMU virtio-serial port (no vhost-vsock on these machines): the
agent's port open in the guest stands for "listening on AF_VSOCK <agent port>", and each accepted
stream is one connection to QEMU's chardev socket, so the guest sees the host come and go as a
vsock listener sees connections come and go. QEMU serves one chardev client at a time and the agent
keeps only the newest vsock connection, so a new stream replaces the previous one.
"""

import os
import socket
import threading

COMMAND_MAX = 32  # CH's partially read command buffer


class VsockBridge:
    def __init__(self, path, agent_port, connect_guest, log):
        self.path = path
        self.agent_port = agent_port
        self.connect_guest = connect_guest  # () -> socket to the guest's port, or None when closed
        self.log = log
        self.lock = threading.Lock()
        self.streams = []  # (host socket, guest socket) pairs being relayed
        self.next_port = (1 << 30) - 1
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)  # EADDRINUSE when the path exists, as CH's UnixListener::bind
        self.sock.listen(16)
        self.closed = False
        threading.Thread(target=self._accept_loop, daemon=True, name="vsock-accept").start()

    def close(self):
        with self.lock:
            self.closed = True
            streams, self.streams = self.streams, []
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for pair in streams:
            self._close_pair(pair)
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def guest_closed(self):
        """The guest closed its end (the agent exited or restarts): every stream ends, as after a RST."""
        with self.lock:
            streams, self.streams = self.streams, []
        for pair in streams:
            self._close_pair(pair)

    @staticmethod
    def _close_pair(pair):
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(conn,), daemon=True, name="vsock-conn").start()

    @staticmethod
    def parse_command(buf):
        """The port of a complete "connect <port>\\n", None when incomplete, ValueError when invalid."""
        prefix = b"connect "
        nl = buf.find(b"\n")
        if len(buf) < len(prefix):
            if nl >= 0:
                raise ValueError("short command")
            return None
        if buf[: len(prefix)].lower() != prefix:
            raise ValueError("not a connect command")
        if nl < 0:
            if len(buf) >= COMMAND_MAX:
                raise ValueError("command too long")
            return None
        return int(buf[len(prefix) : nl].decode("ascii").strip())

    def _handshake(self, conn):
        buf = b""
        try:
            while True:
                # One byte at a time after the shortest valid command, as CH: never read past "\n".
                want = max(len(b"connect 0\n") - len(buf), 1)
                chunk = conn.recv(want)
                if not chunk:
                    raise ValueError("closed before the command")
                buf += chunk
                port = self.parse_command(buf)
                if port is not None:
                    break
        except (ValueError, OSError, UnicodeDecodeError) as e:
            self.log.info(f"vsock: invalid connect request: {e}")
            conn.close()
            return
        if port != self.agent_port:
            self.log.info(f"vsock: nothing listens on guest port {port}: reset")
            conn.close()
            return
        with self.lock:
            old, self.streams = self.streams, []
        for pair in old:
            self._close_pair(pair)
        guest = self.connect_guest()
        if guest is None:
            self.log.info(f"vsock: guest port {port} is not listening: reset")
            conn.close()
            return
        with self.lock:
            if self.closed:
                self._close_pair((conn, guest))
                return
            self.next_port = ((self.next_port + 1) & ~(1 << 31)) | (1 << 30)
            local = self.next_port
            pair = (conn, guest)
            self.streams.append(pair)
        try:
            conn.sendall(f"OK {local}\n".encode())
        except OSError:
            self._drop(pair)
            return
        threading.Thread(target=self._relay, args=(guest, conn, pair), daemon=True, name="vsock-g2h").start()
        self._relay(conn, guest, pair)

    def _drop(self, pair):
        with self.lock:
            if pair in self.streams:
                self.streams.remove(pair)
        self._close_pair(pair)

    def _relay(self, src, dst, pair):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._drop(pair)
