//! S3 settings as the AWS command line finds them: the environment first
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `AWS_REGION`, ...), then the
//! profile named by `AWS_PROFILE` (else `default`) in the shared
//! credentials file (`~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`)
//! and config file (`~/.aws/config`, or `AWS_CONFIG_FILE`).

use std::collections::HashMap;
use std::path::PathBuf;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

pub(crate) fn s3_builder() -> AmazonS3Builder {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::from_env();
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from).unwrap_or_default();
    let credentials = env("AWS_SHARED_CREDENTIALS_FILE").map_or_else(|| home.join(".aws/credentials"), PathBuf::from);
    let config = env("AWS_CONFIG_FILE").map_or_else(|| home.join(".aws/config"), PathBuf::from);
    // In the config file, profiles other than the default are `[profile NAME]`.
    let config_section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
    let from_files = [(credentials, profile.as_str()), (config, config_section.as_str())]
        .into_iter()
        .flat_map(|(file, section)| section_of(&std::fs::read_to_string(file).unwrap_or_default(), section))
        .collect::<HashMap<_, _>>();
    let settings = [
        ("aws_access_key_id", "AWS_ACCESS_KEY_ID", AmazonS3ConfigKey::AccessKeyId),
        ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", AmazonS3ConfigKey::SecretAccessKey),
        ("aws_session_token", "AWS_SESSION_TOKEN", AmazonS3ConfigKey::Token),
        ("region", "AWS_REGION", AmazonS3ConfigKey::Region),
        ("endpoint_url", "AWS_ENDPOINT_URL", AmazonS3ConfigKey::Endpoint),
    ];
    for (file_key, env_key, key) in settings {
        let in_env = env(env_key).is_some()
            || (env_key == "AWS_REGION" && env("AWS_DEFAULT_REGION").is_some())
            || (env_key == "AWS_ENDPOINT_URL" && env("AWS_ENDPOINT").is_some());
        if let (false, Some(value)) = (in_env, from_files.get(file_key)) {
            builder = builder.with_config(key, value);
        }
    }
    // A plain-HTTP endpoint (a local S3 server, MinIO on a cluster's own
    // network) is allowed when it is named as one.
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_default();
    if endpoint.starts_with("http://") {
        builder = builder.with_allow_http(true);
    }
    builder
}

/// The `key = value` lines of `[section]` in an INI file.
fn section_of(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            found.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::section_of;

    #[test]
    fn a_profile_section_is_read_and_others_are_not() {
        let text = "[default]\naws_access_key_id = A\n[profile lab]\nregion=eu-west-1\nEndpoint_URL = http://x:9000\n";
        assert_eq!(section_of(text, "default"), [("aws_access_key_id".into(), "A".into())]);
        assert_eq!(
            section_of(text, "profile lab"),
            [("region".into(), "eu-west-1".into()), ("endpoint_url".into(), "http://x:9000".into())]
        );
        assert!(section_of(text, "profile other").is_empty());
    }
}
