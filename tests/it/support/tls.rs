//! Certificates made at test time with the `openssl` command: a CA, a server certificate for
//! 127.0.0.1 and localhost signed by it, a client certificate signed by it (mutual TLS), and
//! a second, unrelated CA with its own server certificate (a server the first CA must not
//! trust). Made once per test process, in a directory removed when the process ends.
#![allow(dead_code)] // each test module uses a different part of this module

use super::redis::{TempDir, after_exit};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The files of one test PKI.
#[derive(Debug)]
pub struct Certs {
    dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another CA, and a server certificate for 127.0.0.1 it signed.
    pub other_ca: PathBuf,
    pub other_server_cert: PathBuf,
    pub other_server_key: PathBuf,
}

impl Certs {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// This process's certificates, or why they could not be made.
pub fn certs() -> Result<&'static Certs, String> {
    static CERTS: OnceLock<Result<Certs, String>> = OnceLock::new();
    CERTS.get_or_init(make).as_ref().map_err(Clone::clone)
}

fn make() -> Result<Certs, String> {
    let dir = TempDir::new("tls")?.keep();
    after_exit(&[], Some(&dir));
    let file = |name: &str| dir.join(name);
    let certs = Certs {
        ca: file("ca.crt"),
        server_cert: file("server.crt"),
        server_key: file("server.key"),
        client_cert: file("client.crt"),
        client_key: file("client.key"),
        other_ca: file("other-ca.crt"),
        other_server_cert: file("other-server.crt"),
        other_server_key: file("other-server.key"),
        dir: dir.clone(),
    };
    std::fs::write(
        file("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
         basicConstraints=CA:FALSE\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        file("client.ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| e.to_string())?;
    for (ca, name) in [("ca", "miso test CA"), ("other-ca", "another CA")] {
        self_signed_ca(&dir, ca, name)?;
    }
    signed(&dir, "ca", "server", "server.ext")?;
    signed(&dir, "ca", "client", "client.ext")?;
    signed(&dir, "other-ca", "other-server", "server.ext")?;
    Ok(certs)
}

fn self_signed_ca(dir: &Path, name: &str, subject: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={subject}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

fn signed(dir: &Path, ca: &str, name: &str, ext: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
