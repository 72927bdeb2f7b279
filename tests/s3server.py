"""The loopback S3 server lives in the package kubeapi (testing/), beside the loopback API
server, so that the benchmarks use it too; the tests import it from here or from there."""

from kubeapi.s3server import ADMIN, READER, S3Server, running_s3, wait_ready, weed_binary

__all__ = ["ADMIN", "READER", "S3Server", "running_s3", "wait_ready", "weed_binary"]
