//! Where windows go. An object counts as written when the call returns: an S3 PUT (or
//! completed multipart upload) acknowledged, or a file renamed into place after fsync.

use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::ExportError;

/// Objects larger than this go up in parts of this size.
pub const MULTIPART_BYTES: usize = 8 * 1024 * 1024;

#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ExportError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ExportError>;
}

/// A local directory.
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub fn new(root: PathBuf) -> Result<DirSink, ExportError> {
        std::fs::create_dir_all(&root)
            .map_err(|e| ExportError::Sink(format!("{}: {e}", root.display())))?;
        Ok(DirSink { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, ExportError> {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(ExportError::Sink(format!("unsafe key {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

#[async_trait::async_trait]
impl Sink for DirSink {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ExportError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let dir = path.parent().expect("a key has a directory").to_path_buf();
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("partial");
            {
                let mut f = std::fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut f, &body)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| ExportError::Sink(e.to_string()))?
        .map_err(|e| ExportError::Sink(format!("{key}: {e}")))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ExportError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ExportError::Sink(format!("{key}: {e}"))),
        }
    }
}

/// An S3 bucket (AWS, or any S3-compatible server at `endpoint`).
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Sink {
    pub async fn new(c: &crate::ExportConfig) -> Result<S3Sink, ExportError> {
        if c.s3_bucket.is_empty() {
            return Err(ExportError::Config(
                "s3_bucket",
                "is required for sink = \"s3\"".into(),
            ));
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if !c.s3_region.is_empty() {
            loader = loader.region(aws_config::Region::new(c.s3_region.clone()));
        }
        if !c.s3_access_key_id.is_empty() {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.s3_access_key_id.clone(),
                c.s3_secret_access_key.clone(),
                None,
                None,
                "castellan-config",
            ));
        }
        let shared = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if !c.s3_endpoint.is_empty() {
            conf = conf.endpoint_url(&c.s3_endpoint).force_path_style(true);
        }
        Ok(S3Sink {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            bucket: c.s3_bucket.clone(),
        })
    }

    async fn multipart(&self, key: &str, body: Vec<u8>) -> Result<(), ExportError> {
        let err = |e: String| ExportError::Sink(format!("s3://{}/{key}: {e}", self.bucket));
        let up = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| err(format!("{e:?}")))?;
        let id = up.upload_id().unwrap_or_default().to_string();
        let mut parts = Vec::new();
        for (i, chunk) in body.chunks(MULTIPART_BYTES).enumerate() {
            let n = i as i32 + 1;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            match part {
                Ok(p) => parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(p.e_tag().map(str::to_string))
                        .build(),
                ),
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&id)
                        .send()
                        .await;
                    return Err(err(format!("{e:?}")));
                }
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err(format!("{e:?}")))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for S3Sink {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ExportError> {
        if body.len() > MULTIPART_BYTES {
            return self.multipart(key, body).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ExportError::Sink(format!("s3://{}/{key}: {e:?}", self.bucket)))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ExportError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(
                o.body
                    .collect()
                    .await
                    .map_err(|e| ExportError::Sink(format!("{key}: {e}")))?
                    .into_bytes()
                    .to_vec(),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(ExportError::Sink(format!(
                "s3://{}/{key}: {e:?}",
                self.bucket
            ))),
        }
    }
}
