//! Signed plugin directories: minisign (Ed25519) signatures over a
//! `sha256sum`-style list of every file a plugin directory holds.
//!
//! `polis plugin sign DIR --key K` writes two files into the directory:
//!
//! - [`SUMS_FILE`], one line per file, `<sha256 hex>  <path>` with `/`
//!   separators, sorted by path bytes: the manifest, the module or scripts,
//!   and everything else the plugin could load (a symbolic link is listed
//!   as `link:<target>` hashed, never followed);
//! - [`SIGNATURE_FILE`], a minisign signature of [`SUMS_FILE`], whose
//!   trusted comment names the plugin, its version and the list's digest.
//!
//! So the standard tools check a signed plugin without polis:
//! `minisign -Vm polis.sha256sums -p key.pub && sha256sum -c polis.sha256sums`.
//! polis checks the same two things when it is configured with trusted keys
//! ([`crate::Tiers::trusted_keys`]): a plugin whose signature is missing,
//! made by a key not trusted, or broken, or whose files differ from the
//! list (naming each file added, removed or changed), is not loaded.
//!
//! The list's SHA-256 ([`files_digest`]) identifies everything a plugin
//! directory holds; the service's approval records it.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use polis_core::canonical::{Digest, DigestWriter};

/// The file list a signature covers, inside the plugin directory.
pub const SUMS_FILE: &str = "polis.sha256sums";
/// The minisign signature of [`SUMS_FILE`].
pub const SIGNATURE_FILE: &str = "polis.sha256sums.minisig";
/// A plugin directory with more files than this is refused.
pub const MAX_FILES: usize = 20_000;
/// A plugin directory whose files add up to more than this is refused.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;

/// Why a plugin directory could not be listed, signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A file or directory could not be read.
    #[error("`{path}` cannot be read: {reason}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The directory is larger than polis lists.
    #[error("`{dir}` holds more than {limit} to sign")]
    TooLarge {
        /// The plugin directory.
        dir: PathBuf,
        /// Which limit, in words.
        limit: String,
    },
    /// A key or signature file is not in minisign's format.
    #[error("`{path}` is not a minisign {what}: {reason}")]
    BadKey {
        /// The file.
        path: String,
        /// `public key`, `secret key` or `signature`.
        what: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// Signing failed (a wrong password, an encrypted key without one).
    #[error("cannot sign with `{key}`: {reason}")]
    Sign {
        /// The secret key file.
        key: String,
        /// Why.
        reason: String,
    },
    /// The directory carries no signature.
    #[error("`{dir}` is not signed: `{SIGNATURE_FILE}` is missing (sign it with `polis plugin sign`)")]
    Unsigned {
        /// The plugin directory.
        dir: PathBuf,
    },
    /// The signature was made by a key polis does not trust.
    #[error("`{dir}` is signed by key {key_id}, which is not among the trusted keys ({trusted})")]
    UntrustedKey {
        /// The plugin directory.
        dir: PathBuf,
        /// The signing key's id.
        key_id: String,
        /// The trusted keys' ids.
        trusted: String,
    },
    /// The signature does not verify.
    #[error("`{dir}`: the signature by key {key_id} does not verify: {reason}")]
    BadSignature {
        /// The plugin directory.
        dir: PathBuf,
        /// The signing key's id.
        key_id: String,
        /// What failed.
        reason: String,
    },
    /// The files differ from the signed list.
    #[error("`{dir}`: files differ from the signed list: {}", changes.join(", "))]
    Tampered {
        /// The plugin directory.
        dir: PathBuf,
        /// Each difference, such as `changed plugin.py`.
        changes: Vec<String>,
    },
}

/// A public key whose signatures polis accepts.
#[derive(Clone)]
pub struct TrustedKey {
    /// Its minisign key id, 16 upper-case hex digits.
    pub id: String,
    /// Where it was read from.
    pub source: String,
    key: minisign::PublicKey,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey").field("id", &self.id).field("source", &self.source).finish()
    }
}

impl TrustedKey {
    /// A key from a minisign public key file's text (the two-line box
    /// `minisign -G` writes, or its bare base64 line). `source` names it in
    /// errors.
    pub fn parse(source: &str, text: &str) -> Result<TrustedKey, SigningError> {
        let bad = |reason: String| SigningError::BadKey { path: source.to_owned(), what: "public key", reason };
        let text = text.trim();
        let key = if text.starts_with("untrusted comment:") {
            minisign::PublicKeyBox::from_string(text).and_then(minisign::PublicKeyBox::into_public_key)
        } else {
            minisign::PublicKey::from_base64(text)
        }
        .map_err(|e| bad(e.to_string()))?;
        Ok(TrustedKey { id: key_id(key.keynum()), source: source.to_owned(), key })
    }

    /// A key from a public key file.
    pub fn read(path: &Path) -> Result<TrustedKey, SigningError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SigningError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
        TrustedKey::parse(&path.display().to_string(), &text)
    }
}

fn key_id(keynum: &[u8]) -> String {
    // minisign prints the key number as a little-endian u64.
    keynum.iter().rev().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// A new, unencrypted key pair as minisign writes them: (public key file
/// text, secret key file text).
pub fn generate_keypair() -> Result<(String, String), SigningError> {
    let fail = |e: minisign::PError| SigningError::Sign { key: "(new key)".to_owned(), reason: e.to_string() };
    let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(fail)?;
    let id = key_id(pair.pk.keynum());
    let public = pair.pk.to_box().map_err(fail)?.into_string();
    let secret = pair.sk.to_box(Some(&format!("polis plugin signing key {id}"))).map_err(fail)?.into_string();
    Ok((public, secret))
}

/// The `sha256sum`-style list of every file under `dir` but the two
/// signing files.
pub fn file_sums(dir: &Path) -> Result<String, SigningError> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    walk(dir, dir, &mut entries, &mut total)?;
    entries.sort();
    let mut text = String::new();
    for (path, digest) in entries {
        let _ = writeln!(text, "{}  {path}", digest.to_hex());
    }
    Ok(text)
}

/// SHA-256 of [`file_sums`]: what the directory holds, as one digest.
pub fn files_digest(dir: &Path) -> Result<Digest, SigningError> {
    Ok(Digest::of_bytes(file_sums(dir)?.as_bytes()))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Digest)>, total: &mut u64) -> Result<(), SigningError> {
    let unreadable =
        |path: &Path, e: std::io::Error| SigningError::Unreadable { path: path.to_path_buf(), reason: e.to_string() };
    let entries = std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, e))?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        if name == SUMS_FILE || name == SIGNATURE_FILE {
            continue;
        }
        let kind = entry.file_type().map_err(|e| unreadable(&path, e))?;
        if kind.is_dir() {
            walk(root, &path, out, total)?;
            continue;
        }
        if out.len() >= MAX_FILES {
            return Err(SigningError::TooLarge { dir: root.to_path_buf(), limit: format!("{MAX_FILES} files") });
        }
        let digest = if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| unreadable(&path, e))?;
            Digest::of_bytes(format!("link:{}", target.display()).as_bytes())
        } else {
            hash_file(&path, total).map_err(|e| unreadable(&path, e))?
        };
        if *total > MAX_TOTAL_BYTES {
            return Err(SigningError::TooLarge { dir: root.to_path_buf(), limit: format!("{MAX_TOTAL_BYTES} bytes") });
        }
        out.push((name, digest));
    }
    Ok(())
}

fn hash_file(path: &Path, total: &mut u64) -> std::io::Result<Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut writer = DigestWriter::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(writer.finish());
        }
        *total += n as u64;
        if *total > MAX_TOTAL_BYTES {
            return Ok(writer.finish());
        }
        writer.update(&buffer[..n]);
    }
}

/// What signing wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signing key's id.
    pub key_id: String,
    /// How many files the list holds.
    pub files: usize,
    /// SHA-256 of the list.
    pub files_sha256: Digest,
}

/// Signs `dir` with the minisign secret key in `secret_text` (read from
/// `key_source`), decrypting it with `password` when it is encrypted.
/// `label` (the plugin id and version) goes into the trusted comment.
pub fn sign(
    dir: &Path,
    key_source: &str,
    secret_text: &str,
    password: Option<String>,
    label: &str,
) -> Result<Signed, SigningError> {
    let sign_error = |reason: String| SigningError::Sign { key: key_source.to_owned(), reason };
    let boxed = minisign::SecretKeyBox::from_string(secret_text.trim()).map_err(|e| SigningError::BadKey {
        path: key_source.to_owned(),
        what: "secret key",
        reason: e.to_string(),
    })?;
    let encrypted = boxed.clone().into_unencrypted_secret_key().map(|k| k.is_encrypted()).unwrap_or(true);
    let secret = if encrypted {
        let Some(password) = password else {
            return Err(sign_error("the key is encrypted; give its password in POLIS_SIGNING_KEY_PASSWORD".to_owned()));
        };
        boxed.into_secret_key(Some(password))
    } else {
        boxed.into_unencrypted_secret_key()
    }
    .map_err(|e| sign_error(e.to_string()))?;
    let sums = file_sums(dir)?;
    let files_sha256 = Digest::of_bytes(sums.as_bytes());
    let comment = format!("polis plugin {label} files sha256:{}", files_sha256.to_hex());
    let signature = minisign::sign(None, &secret, sums.as_bytes(), Some(&comment), Some("signed by polis plugin sign"))
        .map_err(|e| sign_error(e.to_string()))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| SigningError::Unreadable { path, reason: e.to_string() })
    };
    write(SUMS_FILE, &sums)?;
    write(SIGNATURE_FILE, &signature.into_string())?;
    Ok(Signed { key_id: key_id(secret.keynum()), files: sums.lines().count(), files_sha256 })
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that made it.
    pub key_id: String,
    /// Its trusted comment.
    pub comment: String,
    /// SHA-256 of the signed list, which the files match.
    pub files_sha256: Digest,
}

/// Checks that `dir` is signed by one of `trusted` and that its files are
/// exactly the signed list.
pub fn verify(dir: &Path, trusted: &[TrustedKey]) -> Result<Verified, SigningError> {
    let signature_path = dir.join(SIGNATURE_FILE);
    if !signature_path.exists() {
        return Err(SigningError::Unsigned { dir: dir.to_path_buf() });
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| SigningError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })
    };
    let signature = minisign::SignatureBox::from_string(&read(&signature_path)?).map_err(|e| SigningError::BadKey {
        path: signature_path.display().to_string(),
        what: "signature",
        reason: e.to_string(),
    })?;
    let key_id = key_id(signature.keynum());
    let Some(key) = trusted.iter().find(|k| k.id == key_id) else {
        let ids = trusted.iter().map(|k| k.id.as_str()).collect::<Vec<_>>();
        let trusted = if ids.is_empty() { "none are configured".to_owned() } else { ids.join(", ") };
        return Err(SigningError::UntrustedKey { dir: dir.to_path_buf(), key_id, trusted });
    };
    let signed = read(&dir.join(SUMS_FILE))?;
    minisign::verify(&key.key, &signature, std::io::Cursor::new(signed.as_bytes()), true, false, false).map_err(
        |e| SigningError::BadSignature { dir: dir.to_path_buf(), key_id: key_id.clone(), reason: e.to_string() },
    )?;
    let actual = file_sums(dir)?;
    if actual != signed {
        return Err(SigningError::Tampered { dir: dir.to_path_buf(), changes: differences(&signed, &actual) });
    }
    let comment = signature.trusted_comment().unwrap_or_default();
    Ok(Verified { key_id, comment, files_sha256: Digest::of_bytes(signed.as_bytes()) })
}

/// Each file added, removed or changed between two lists, by path.
fn differences(signed: &str, actual: &str) -> Vec<String> {
    use std::collections::BTreeMap;
    let parse = |text: &str| -> BTreeMap<String, String> {
        text.lines().filter_map(|l| l.split_once("  ")).map(|(h, p)| (p.to_owned(), h.to_owned())).collect()
    };
    let (signed, actual) = (parse(signed), parse(actual));
    let mut changes = Vec::new();
    for (path, hash) in &actual {
        match signed.get(path) {
            None => changes.push(format!("added {path}")),
            Some(before) if before != hash => changes.push(format!("changed {path}")),
            Some(_) => {}
        }
    }
    changes.extend(signed.keys().filter(|p| !actual.contains_key(*p)).map(|p| format!("removed {p}")));
    changes.sort();
    if changes.is_empty() {
        // Same files, different text: the list itself was edited.
        changes.push(format!("`{SUMS_FILE}` was rewritten"));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("polis-signing-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("manifest.json"), "{}").unwrap();
        std::fs::write(dir.join("plugin.py"), "print('hi')\n").unwrap();
        std::fs::write(dir.join("lib/helper.py"), "X = 1\n").unwrap();
        dir
    }

    fn signed(name: &str) -> (PathBuf, TrustedKey) {
        let dir = plugin_dir(name);
        let (public, secret) = generate_keypair().unwrap();
        let key = TrustedKey::parse("test.pub", &public).unwrap();
        let signed = sign(&dir, "test.key", &secret, None, "test.plugin.v1 1.0.0").unwrap();
        assert_eq!((signed.key_id.as_str(), signed.files), (key.id.as_str(), 3));
        (dir, key)
    }

    #[test]
    fn the_file_list_is_sorted_sha256sum_lines_without_the_signing_files() {
        let dir = plugin_dir("sums");
        std::fs::write(dir.join(SUMS_FILE), "old").unwrap();
        let sums = file_sums(&dir).unwrap();
        let paths: Vec<&str> = sums.lines().map(|l| l.split_once("  ").unwrap().1).collect();
        assert_eq!(paths, ["lib/helper.py", "manifest.json", "plugin.py"]);
        assert!(sums.starts_with(&Digest::of_bytes(b"X = 1\n").to_hex()), "{sums}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_signed_directory_verifies_with_its_key() {
        let (dir, key) = signed("good");
        let verified = verify(&dir, std::slice::from_ref(&key)).unwrap();
        assert_eq!(verified.key_id, key.id);
        assert!(
            verified.comment.starts_with("polis plugin test.plugin.v1 1.0.0 files sha256:"),
            "{}",
            verified.comment
        );
        assert_eq!(verified.files_sha256, files_digest(&dir).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_changed_added_or_removed_file_is_named() {
        let (dir, key) = signed("tampered");
        std::fs::write(dir.join("plugin.py"), "import os\n").unwrap();
        std::fs::write(dir.join("extra.py"), "").unwrap();
        std::fs::remove_file(dir.join("lib/helper.py")).unwrap();
        match verify(&dir, &[key]).unwrap_err() {
            SigningError::Tampered { changes, .. } => {
                assert_eq!(changes, ["added extra.py", "changed plugin.py", "removed lib/helper.py"]);
            }
            other => panic!("expected tampering, got {other}"),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_edited_list_breaks_the_signature() {
        let (dir, key) = signed("list");
        std::fs::write(dir.join("plugin.py"), "import os\n").unwrap();
        // Re-list the files so the list matches them again: only the
        // signature can tell.
        std::fs::write(dir.join(SUMS_FILE), file_sums(&dir).unwrap()).unwrap();
        assert!(matches!(verify(&dir, &[key]).unwrap_err(), SigningError::BadSignature { .. }));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_key_or_no_signature_is_refused() {
        let (dir, _) = signed("other");
        let (other, _) = generate_keypair().unwrap();
        let other = TrustedKey::parse("other.pub", &other).unwrap();
        assert!(matches!(verify(&dir, &[other]).unwrap_err(), SigningError::UntrustedKey { .. }));
        let bare = plugin_dir("bare");
        assert!(matches!(verify(&bare, &[]).unwrap_err(), SigningError::Unsigned { .. }));
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(bare).unwrap();
    }

    #[test]
    fn garbage_keys_are_refused_naming_the_file() {
        let error = TrustedKey::parse("keys/ops.pub", "not a key").unwrap_err();
        assert!(error.to_string().contains("`keys/ops.pub` is not a minisign public key"), "{error}");
    }
}
