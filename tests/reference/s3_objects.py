"""An independent S3 client for the object-store tests: boto3 (which moto's
server package brings) against the test's server at $AWS_ENDPOINT_URL.

    s3_objects.py mkbucket BUCKET
    s3_objects.py upload DIR BUCKET PREFIX      every file under DIR
    s3_objects.py download BUCKET PREFIX DIR    every object under PREFIX/
    s3_objects.py get BUCKET KEY PATH           one object
"""
import os
import sys

import boto3


def main():
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    command, *args = sys.argv[1:]
    if command == "mkbucket":
        s3.create_bucket(Bucket=args[0])
    elif command == "upload":
        root, bucket, prefix = args
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                s3.upload_file(path, bucket, prefix + "/" + os.path.relpath(path, root))
    elif command == "download":
        bucket, prefix, root = args
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        for page in pages:
            for obj in page.get("Contents", []):
                path = os.path.join(root, obj["Key"][len(prefix) + 1 :])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                s3.download_file(bucket, obj["Key"], path)
        # Unfinished multipart uploads would be parts the store never published.
        pending = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        print(len(pending))
    elif command == "get":
        bucket, key, path = args
        s3.download_file(bucket, key, path)
    else:
        sys.exit(f"unknown command {command}")


main()
