"""Where bundles live besides a local directory, and how they are sealed: S3-compatible
object storage (:mod:`.s3`, the only importer of the S3 client) and age encryption
(:mod:`.age`, the only importer of the age library). Both libraries are imported only when
a location or a key asks for them, so the tool's start-up does not pay for them.
:mod:`.location` (pure) parses locations, :mod:`.settings` holds the command line's
storage flags for the run."""
