"""moto's S3/CloudFront/SQS/... mock on 127.0.0.1, on a port the OS picks.

Prints the port on the first line of stdout, then serves until SIGTERM or
SIGINT. (`moto_server -p PORT` needs the port chosen beforehand, and a port
picked free may be taken by another process before moto binds it.)
"""
import signal
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
server.stop()
sys.exit(0)
