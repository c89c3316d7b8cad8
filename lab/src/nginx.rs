//! The nginx configuration `baton lab up --origin nginx` runs the origin
//! with: the lab's objects folder as root, on the origin address, every
//! path of its own under the lab's run folder so that it touches nothing of
//! the host's nginx. Knows nothing of starting or stopping it.

use std::fs;
use std::path::PathBuf;

use crate::error::Result;
use crate::names::Lab;
use crate::names::ORIGIN_ADDR;

/// The nginx configuration: objects folder as root, every path of its own
/// under the run folder so it touches nothing of the host's nginx.
pub(crate) fn write_conf(lab: &Lab) -> Result<PathBuf> {
    let dir = lab.file("nginx");
    fs::create_dir_all(&dir)?;
    let path = dir.join("nginx.conf");
    fs::write(&path, conf(lab))?;
    Ok(path)
}

/// The text of the nginx configuration for `lab`.
fn conf(lab: &Lab) -> String {
    let dir = lab.file("nginx");
    let d = dir.display();
    format!(
        "# Written by `baton lab up --origin nginx`.\n\
         worker_processes 1;\n\
         daemon on;\n\
         user root;\n\
         pid {pid};\n\
         error_log {log} warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile on;\n\
         \x20   keepalive_timeout 120;\n\
         \x20   keepalive_requests 100000;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   server {{\n\
         \x20       listen {ORIGIN_ADDR}:80;\n\
         \x20       root {root};\n\
         \x20   }}\n\
         }}\n",
        pid = lab.file("origin.pid").display(),
        log = lab.file("origin.log").display(),
        root = lab.objects_dir().display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_serves_objects_on_the_origin_address() {
        let lab = Lab::new("btunitnginx").unwrap();
        let text = conf(&lab);
        assert!(text.contains("listen 198.19.0.2:80;"));
        assert!(text.contains("root /run/baton-lab/btunitnginx/objects;"));
        assert!(text.contains("pid /run/baton-lab/btunitnginx/origin.pid;"));
    }
}
