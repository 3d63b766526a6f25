//! The coordinator's TLS settings: its certificate and key, and for mutual TLS the CA that client
//! certificates must chain to. Files are read and checked once at start; errors name the file.

use std::path::Path;
use sweep_proto::remote::{read_pem, Pem};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Builds the rustls server configuration, or `None` when no certificate is given (plain HTTP/2).
/// A key file that others can read is warned about, or refused under `strict_perms`.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    client_ca: Option<&Path>,
    strict_perms: bool,
) -> Result<Option<ServerTlsConfig>, String> {
    let (cert, key) = match (cert, key) {
        (None, None) => {
            if client_ca.is_some() {
                return Err("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first".into());
            }
            return Ok(None);
        }
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return Err("--tls-cert needs --tls-key (the certificate's private key)".into()),
        (None, Some(_)) => return Err("--tls-key needs --tls-cert (the certificate for that key)".into()),
    };
    let cert = read_pem(cert, Pem::Certificate)?;
    sweep_proto::secret_file::check_secret_file(key, strict_perms)?;
    let identity = Identity::from_pem(cert, read_pem(key, Pem::PrivateKey)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = client_ca {
        // Client certificates become mandatory: tonic's default is `client_auth_optional(false)`.
        config = config.client_ca_root(Certificate::from_pem(read_pem(ca, Pem::Certificate)?));
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = server_config(Some(&junk), Some(&junk), None, false).unwrap_err();
        assert!(err.contains("junk.pem") && err.contains("certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = server_config(Some(&missing), Some(&junk), None, false).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        assert!(server_config(None, None, Some(&junk), false).unwrap_err().contains("--tls-client-ca"));
        assert!(server_config(None, None, None, false).unwrap().is_none());
    }

    #[test]
    fn a_key_others_can_read_is_refused_under_strict_perms() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("server.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cert = dir.path().join("server.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let err = server_config(Some(&cert), Some(&key), None, true).unwrap_err();
        assert!(err.contains("server.key") && err.contains("0644") && err.contains("--strict-perms"), "{err}");
        // Without the flag the key is used (here: a warning, then the PEM checks pass).
        assert!(server_config(Some(&cert), Some(&key), None, false).unwrap().is_some());
    }
}
