//! What the WebSocket port serves to a plain `GET`: pages built into the
//! program, a directory of files read once at start, and the JavaScript
//! client with its MessagePack module, so a browser loads the page and the
//! code that talks to us from the very server it talks to, and nobody
//! copies files out of this repository.
//!
//! Everything is read into memory before the server starts, bounded in
//! count and bytes, so serving a page never touches the disk, and a wrong
//! directory (a home directory, `/`) is refused at start instead of
//! filling memory.

use std::path::{Path, PathBuf};

/// A file the WebSocket port serves to a plain `GET` (the chat page and its
/// script, say), so a browser can load the page from the server it talks to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Page {
    /// The request path, `/` or `/rust-tcp.js`.
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its bytes.
    pub body: bytes::Bytes,
}

/// Why a directory could not be served; the operator's to fix (the path
/// is in the message).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// Reading the directory or one of its files failed.
    #[error("reading {path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory holds more than the bounds allow.
    #[error(
        "{root} holds more than {} files or {} bytes; serve a smaller directory",
        Page::MAX_DIRECTORY_FILES,
        Page::MAX_DIRECTORY_BYTES
    )]
    TooLarge {
        /// The directory.
        root: PathBuf,
    },
    /// A file name that cannot be part of a URL path (not UTF-8).
    #[error("{path}: the name is not UTF-8, so it has no URL")]
    Name {
        /// The file.
        path: PathBuf,
    },
}

impl Page {
    /// The most files [`Page::directory`] reads.
    pub const MAX_DIRECTORY_FILES: usize = 1_000;
    /// The most bytes [`Page::directory`] reads, all files together.
    pub const MAX_DIRECTORY_BYTES: u64 = 64 * 1024 * 1024;

    /// A page at `path`.
    pub fn new(
        path: impl Into<String>,
        content_type: impl Into<String>,
        body: impl Into<bytes::Bytes>,
    ) -> Page {
        Page {
            path: path.into(),
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// Every file under `root` (recursively, in name order), at its path
    /// relative to `root`, `index.html` of the top directory at `/`, with
    /// the `Content-Type` its extension says ([`Page::content_type_of`]). Symbolic
    /// links are followed as the files they point to; hidden files (a name
    /// starting with `.`) are left out, so a `.git` or an editor's swap
    /// file is never published. At most [`Page::MAX_DIRECTORY_FILES`] files and
    /// [`Page::MAX_DIRECTORY_BYTES`] bytes.
    pub fn directory(root: impl AsRef<Path>) -> Result<Vec<Page>, PageError> {
        let root = root.as_ref();
        let mut found = Vec::new();
        let mut bytes = 0;
        collect(root, root, &mut found, &mut bytes)?;
        Ok(found)
    }

    /// The JavaScript client (`/rust-tcp.js`, `clients/js` of this
    /// repository) and the MessagePack module its typed protocols use
    /// (`/msgpack.js`), built into the library at this very version, so
    /// the page's client always speaks what the server speaks.
    pub fn javascript_client() -> Vec<Page> {
        const JS: &str = "text/javascript; charset=utf-8";
        vec![
            Page::new(
                "/rust-tcp.js",
                JS,
                &include_bytes!("../../../clients/js/rust-tcp.js")[..],
            ),
            Page::new(
                "/msgpack.js",
                JS,
                &include_bytes!("../../../clients/js/msgpack.js")[..],
            ),
        ]
    }

    /// The `Content-Type` a file is served with, by its extension (what a
    /// browser needs to run a module script, show an image, or load wasm);
    /// anything unknown is `application/octet-stream`, which a browser
    /// downloads rather than runs.
    pub fn content_type_of(path: &Path) -> &'static str {
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match extension.to_ascii_lowercase().as_str() {
            "html" | "htm" => "text/html; charset=utf-8",
            "js" | "mjs" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "json" | "map" => "application/json",
            "txt" => "text/plain; charset=utf-8",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "ico" => "image/x-icon",
            "woff2" => "font/woff2",
            "wasm" => "application/wasm",
            _ => "application/octet-stream",
        }
    }
}

/// Adds `more` to `pages`; a page of `more` replaces one at the same path.
pub(crate) fn merge(pages: &mut Vec<Page>, more: Vec<Page>) {
    for page in more {
        pages.retain(|p| p.path != page.path);
        pages.push(page);
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    found: &mut Vec<Page>,
    bytes: &mut u64,
) -> Result<(), PageError> {
    let read = |path: &Path| {
        let path = path.to_owned();
        move |source| PageError::Read { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<_, _>>())
        .map_err(read(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // `metadata` follows a symbolic link, so a link is what it points to.
        let kind = std::fs::metadata(&path).map_err(read(&path))?;
        if kind.is_dir() {
            collect(root, &path, found, bytes)?;
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        *bytes += kind.len();
        if found.len() >= Page::MAX_DIRECTORY_FILES || *bytes > Page::MAX_DIRECTORY_BYTES {
            return Err(PageError::TooLarge {
                root: root.to_owned(),
            });
        }
        let body = std::fs::read(&path).map_err(read(&path))?;
        let relative = path
            .strip_prefix(root)
            .ok()
            .and_then(|p| p.to_str())
            .ok_or_else(|| PageError::Name { path: path.clone() })?
            .replace('\\', "/");
        let url = match relative.as_str() {
            "index.html" => "/".to_owned(),
            other => format!("/{other}"),
        };
        found.push(Page::new(url, Page::content_type_of(&path), body));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rust-tcp-pages-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_directory_is_served_at_its_paths_with_its_types() {
        let root = scratch("tree");
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::create_dir(root.join("js")).unwrap();
        std::fs::write(root.join("js/app.mjs"), "export {}").unwrap();
        std::fs::write(root.join("logo.PNG"), [0x89, b'P']).unwrap();
        std::fs::write(root.join(".secret"), "token").unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        let pages = Page::directory(&root).unwrap();
        let got: Vec<_> = pages
            .iter()
            .map(|p| (p.path.as_str(), p.content_type.as_str(), p.body.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("/", "text/html; charset=utf-8", 11),
                ("/js/app.mjs", "text/javascript; charset=utf-8", 9),
                ("/logo.PNG", "image/png", 2),
            ]
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn too_many_files_are_refused_with_the_directory_named() {
        let root = scratch("many");
        for i in 0..=Page::MAX_DIRECTORY_FILES {
            std::fs::write(root.join(format!("{i}.txt")), "").unwrap();
        }
        let err = Page::directory(&root).unwrap_err();
        assert!(matches!(err, PageError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains(&*root.to_string_lossy()), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_missing_directory_says_which() {
        let err = Page::directory("/nonexistent/rust-tcp-pages").unwrap_err();
        assert_eq!(
            err.to_string(),
            "reading /nonexistent/rust-tcp-pages: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn later_pages_replace_earlier_ones_at_the_same_path() {
        let mut pages = Page::javascript_client();
        merge(
            &mut pages,
            vec![Page::new("/rust-tcp.js", "text/plain", "mine")],
        );
        assert_eq!(pages.len(), 2);
        let js = pages.iter().find(|p| p.path == "/rust-tcp.js").unwrap();
        assert_eq!(&js.body[..], b"mine");
        assert!(pages.iter().any(|p| p.path == "/msgpack.js"));
    }
}
