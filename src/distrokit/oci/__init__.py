"""OCI images: references, the registry client and the local content-addressed cache."""
