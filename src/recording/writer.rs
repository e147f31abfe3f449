//! The recording thread: takes the tick's finished tick buffers from a lock-free queue
//! (polled, so the tick never wakes it) and writes each as one chunk, rotating segment files
//! by size. On any I/O error (a full disk, a directory that cannot be written) it logs once,
//! counts it, and stops recording: the server keeps serving, and the tick side stops
//! capturing when it sees the flag.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use super::format::{self, CHUNK_HEADER, CHUNK_TICKS, Header};
use crate::stats::Stats;

/// How often the thread looks for tick buffers (the tick never wakes it: a wake is a syscall
/// on the tick's path).
const POLL: Duration = Duration::from_millis(20);

/// What the tick side and the recording thread share.
pub(crate) struct Link {
    /// Finished tick buffers, oldest first.
    pub full: ArrayQueue<Vec<u8>>,
    /// Emptied buffers going back to the tick (so it does not allocate per tick).
    pub spare: ArrayQueue<Vec<u8>>,
    /// Set by the tick side when no more buffers will come.
    pub done: AtomicBool,
    /// Set by the recording thread when it stopped on an error.
    pub failed: AtomicBool,
}

impl Link {
    /// A link holding up to `capacity` buffers each way.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            full: ArrayQueue::new(capacity),
            spare: ArrayQueue::new(capacity),
            done: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }
}

/// Where and how segments are written.
pub(crate) struct Segments {
    /// The recording directory.
    pub dir: PathBuf,
    /// A new segment is started once the current one reaches this many bytes.
    pub max_bytes: u64,
    /// The header every segment starts with (its `segment` and `first_tick` are set per file).
    pub header: Header,
}

/// The path of segment `index` of `session` in `dir`.
pub(crate) fn segment_path(dir: &Path, session: &str, index: u32) -> PathBuf {
    dir.join(format!("{session}-{index:04}.rec"))
}

/// Starts the recording thread.
pub(crate) fn spawn(
    segments: Segments,
    link: Arc<Link>,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("throng-record".into())
        .spawn(move || {
            crate::tick::yield_to_the_tick();
            run(segments, &link, &stats)
        })
}

fn run(segments: Segments, link: &Link, stats: &Stats) {
    let mut writer = SegmentWriter {
        segments,
        file: None,
        index: 0,
        written: 0,
        chunk: Vec::new(),
    };
    let mut failed = false;
    if let Err(error) = writer.start_segment(1) {
        failed = true;
        fail(link, stats, &writer, &error);
    } else {
        stats.recording_active.store(1, Ordering::Relaxed);
    }
    loop {
        let mut took_any = false;
        while let Some(mut ticks) = link.full.pop() {
            took_any = true;
            if !failed {
                match writer.write_ticks(&ticks) {
                    Ok(bytes) => {
                        Stats::add(&stats.recording_bytes, bytes);
                    }
                    Err(error) => {
                        failed = true;
                        fail(link, stats, &writer, &error);
                    }
                }
            }
            ticks.clear();
            let _ = link.spare.push(ticks);
        }
        if link.done.load(Ordering::Acquire) && link.full.is_empty() {
            break;
        }
        if !took_any {
            std::thread::sleep(POLL);
        }
    }
    if let Some(file) = writer.file.take() {
        let _ = file.sync_data();
    }
    stats.recording_active.store(0, Ordering::Relaxed);
}

fn fail(link: &Link, stats: &Stats, writer: &SegmentWriter, error: &std::io::Error) {
    link.failed.store(true, Ordering::Release);
    Stats::bump(&stats.recording_failures);
    stats.recording_active.store(0, Ordering::Relaxed);
    tracing::error!(
        path = %writer.current_path().display(),
        %error,
        "recording stopped (the server keeps running)"
    );
}

struct SegmentWriter {
    segments: Segments,
    file: Option<File>,
    index: u32,
    written: u64,
    /// Reused: one chunk, prefix included, written with one call.
    chunk: Vec<u8>,
}

impl SegmentWriter {
    fn current_path(&self) -> PathBuf {
        segment_path(
            &self.segments.dir,
            &self.segments.header.session,
            self.index,
        )
    }

    /// Opens the next segment file and writes its preamble and header.
    fn start_segment(&mut self, first_tick: u64) -> std::io::Result<()> {
        if self.file.is_some() {
            self.index += 1;
        }
        std::fs::create_dir_all(&self.segments.dir)?;
        let path = self.current_path();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let header = Header {
            segment: self.index,
            first_tick,
            ..self.segments.header.clone()
        };
        self.chunk.clear();
        format::write_preamble(&mut self.chunk);
        let encoded = postcard::to_allocvec(&header).expect("encode a header");
        format::write_chunk(&mut self.chunk, CHUNK_HEADER, &encoded);
        file.write_all(&self.chunk)?;
        if let Some(previous) = self.file.replace(file) {
            previous.sync_data()?;
        }
        self.written = self.chunk.len() as u64;
        Ok(())
    }

    /// Writes whole ticks as one chunk (rotating first if the segment is full); returns the
    /// bytes written.
    fn write_ticks(&mut self, ticks: &[u8]) -> std::io::Result<u64> {
        let mut bytes = 0;
        if self.written >= self.segments.max_bytes {
            self.start_segment(format::first_tick(ticks).unwrap_or(0))?;
            bytes += self.written;
        }
        self.chunk.clear();
        format::write_chunk(&mut self.chunk, CHUNK_TICKS, ticks);
        let file = self.file.as_mut().expect("a segment is open");
        file.write_all(&self.chunk)?;
        self.written += self.chunk.len() as u64;
        Ok(bytes + self.chunk.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Schema;
    use crate::recording::format::{Entry, SegmentReader, push_entry};

    fn header() -> Header {
        Header {
            throng_version: "test".into(),
            session: "s".into(),
            segment: 0,
            first_tick: 1,
            digest_every: 1,
            config: String::new(),
            schema: Schema::default(),
            persisted: Vec::new(),
        }
    }

    fn tick(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        push_entry(&mut out, &Entry::Tick(n));
        push_entry(
            &mut out,
            &Entry::Input {
                connection: 1,
                seq: n as u32,
                dir_x: 1,
                dir_y: 0,
            },
        );
        out
    }

    #[test]
    fn segments_rotate_by_size_and_each_starts_with_its_first_tick() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter {
            segments: Segments {
                dir: dir.path().to_owned(),
                max_bytes: 100,
                header: header(),
            },
            file: None,
            index: 0,
            written: 0,
            chunk: Vec::new(),
        };
        writer.start_segment(1).unwrap();
        for n in 1..=20 {
            writer.write_ticks(&tick(n)).unwrap();
        }
        drop(writer);
        let mut next_tick = 1;
        let mut files = 0;
        while let Ok(bytes) = std::fs::read(segment_path(dir.path(), "s", files)) {
            let (header, mut reader) = SegmentReader::open(&bytes).unwrap();
            assert_eq!((header.segment, header.first_tick), (files, next_tick));
            while let Some(chunk) = reader.next_chunk() {
                let (_, payload) = chunk.unwrap();
                assert_eq!(format::first_tick(payload), Some(next_tick));
                next_tick += 1;
            }
            files += 1;
        }
        assert_eq!(next_tick, 21, "every tick is in some segment");
        assert!(files > 2, "{files} segments");
    }

    #[test]
    fn a_full_disk_is_a_write_error_that_stops_the_recording_with_a_count() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let link = Arc::new(Link::new(8));
        let stats = Arc::new(Stats::default());
        let mut writer = SegmentWriter {
            segments: Segments {
                dir: PathBuf::from("/dev"),
                max_bytes: u64::MAX,
                header: header(),
            },
            file: Some(OpenOptions::new().write(true).open("/dev/full").unwrap()),
            index: 0,
            written: 0,
            chunk: Vec::new(),
        };
        let error = writer.write_ticks(&tick(1)).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC));
        fail(&link, &stats, &writer, &error);
        assert!(link.failed.load(Ordering::Acquire));
        assert_eq!(stats.recording_failures.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_unwritable_directory_stops_recording_and_the_thread_still_drains_the_tick() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let link = Arc::new(Link::new(8));
        let stats = Arc::new(Stats::default());
        for n in 1..=5 {
            link.full.push(tick(n)).unwrap();
        }
        link.done.store(true, Ordering::Release);
        let segments = Segments {
            dir: not_a_dir.join("recordings"),
            max_bytes: u64::MAX,
            header: header(),
        };
        spawn(segments, link.clone(), stats.clone())
            .unwrap()
            .join()
            .unwrap();
        assert!(link.failed.load(Ordering::Acquire));
        assert_eq!(stats.recording_failures.load(Ordering::Relaxed), 1);
        assert_eq!(stats.recording_active.load(Ordering::Relaxed), 0);
        assert!(link.full.is_empty(), "every buffer was taken");
        assert_eq!(link.spare.len(), 5, "and handed back empty");
    }
}
