//! Certificates for a test's own TLS server, made with the `openssl` CLI: a private CA
//! of the test's own and a server certificate it signed for `127.0.0.1` and
//! `localhost`. Nothing else trusts that CA, which is the point: a client must be told
//! to (`REDIS_CA_FILE`), and one that is not must refuse the server.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary folder holding `ca.crt`, `server.crt` and `server.key` (PEM), removed
/// on drop.
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// A new CA and a server certificate it signed, valid for a day.
    pub fn generate() -> TestCertificates {
        let dir =
            std::env::temp_dir().join(format!("rushcart-tls-{}", ulid::Ulid::generate().to_string().to_lowercase()));
        std::fs::create_dir_all(&dir).expect("a temporary folder for the certificates");
        let certificates = TestCertificates { dir };
        let dir = &certificates.dir;
        openssl(
            dir,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
             -subj /CN=rushcart-test-CA -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt",
        );
        openssl(
            dir,
            "req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -subj /CN=localhost -keyout server.key -out server.csr",
        );
        // rustls takes the server's name from its subject alternative names only, and
        // refuses a CA certificate presented as a server's.
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the server certificate's extensions");
        openssl(
            dir,
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
             -extfile server.ext -out server.crt",
        );
        certificates
    }

    /// The CA's certificate (PEM): what `REDIS_CA_FILE` names.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `openssl` with the whitespace-separated `args` in `dir`; panics with its error
/// output if it fails.
fn openssl(dir: &Path, args: &str) {
    let output = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the openssl CLI (Debian's openssl package): {e}"));
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.split_whitespace().collect::<Vec<_>>().join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
