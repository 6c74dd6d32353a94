//! The write-ahead log: what alertbook acknowledged, on disk before the
//! acknowledgement, replayed at start.
//!
//! A log is a directory of segment files (`00000001.wal`, ...), each a run of
//! records framed as `[payload length: u32 LE][CRC-32 of payload: u32 LE][payload]`.
//! Segments roll over at a size limit; [`Wal::cut`] starts a new one on demand
//! and [`Wal::remove_segments_before`] drops the ones a checkpoint made
//! redundant. [`Wal::open_from`] opens past them: segments below the number a
//! checkpoint recorded are removed unreplayed, and numbering never goes back.
//!
//! Durability: [`Wal::append`] writes the record to the file (so it survives
//! the process being killed) and, under [`FsyncPolicy::Always`], returns only
//! once it is fsynced (concurrent writers share one fsync: group commit). On
//! open, a torn or corrupt tail (short record, bad checksum) is cut off with a
//! warning naming the segment and offset; corruption can never stop a start.
//!
//! The log knows nothing of what the records mean; callers encode them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The header of every record: length and checksum.
const HEADER_BYTES: usize = 8;
/// The largest payload a record may carry.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before `append` returns: durable against power loss.
    Always,
    /// At most this long after the append (by the next append or [`Wal::sync`]).
    Interval(Duration),
    /// Only when a segment is closed: durable against a crash of the process,
    /// not of the machine.
    Never,
}

/// Tunables of the log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self { segment_bytes: 64 << 20, fsync: FsyncPolicy::Always }
    }
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("record of {size} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")]
    RecordTooLarge { size: usize },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

/// What opening found: how many records were replayed and any damage repaired.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: u64,
    /// Human-readable descriptions of truncations made.
    pub repairs: Vec<String>,
}

struct Active {
    file: File,
    path: PathBuf,
    number: u64,
    bytes: u64,
    /// Records written / fsynced, counted since open.
    written: u64,
    synced: u64,
    last_sync: Instant,
}

/// An open write-ahead log.
pub struct Wal {
    directory: PathBuf,
    options: WalOptions,
    active: Mutex<Active>,
    sync_lock: Mutex<()>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("directory", &self.directory).field("options", &self.options).finish()
    }
}

fn segment_path(directory: &Path, number: u64) -> PathBuf {
    directory.join(format!("{number:08}.wal"))
}

/// Segment numbers present in `directory`, ascending.
fn segments(directory: &Path) -> Result<Vec<u64>, Error> {
    let mut numbers: Vec<u64> = fs::read_dir(directory)
        .map_err(io_error(directory))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Hands the valid records of one segment to `on_record`; returns their count
/// and the length of the valid prefix, and where and why reading stopped early.
fn read_segment(path: &Path, on_record: &mut dyn FnMut(&[u8])) -> Result<(u64, u64, Option<String>), Error> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut file| file.read_to_end(&mut bytes)).map_err(io_error(path))?;
    let mut records = 0;
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.len() < HEADER_BYTES {
            return Ok((records, offset as u64, Some(format!("torn record header at offset {offset}"))));
        }
        let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let checksum = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if length > MAX_RECORD_BYTES {
            return Ok((records, offset as u64, Some(format!("invalid record length {length} at offset {offset}"))));
        }
        if rest.len() < HEADER_BYTES + length {
            return Ok((records, offset as u64, Some(format!("torn record at offset {offset}"))));
        }
        let payload = &rest[HEADER_BYTES..HEADER_BYTES + length];
        if crc32fast::hash(payload) != checksum {
            return Ok((records, offset as u64, Some(format!("checksum mismatch at offset {offset}"))));
        }
        on_record(payload);
        records += 1;
        offset += HEADER_BYTES + length;
    }
    Ok((records, offset as u64, None))
}

impl Wal {
    /// Opens the log in `directory` (created if missing), repairing damage; every
    /// valid record, oldest first, goes to `on_record` before it returns.
    pub fn open(directory: &Path, options: WalOptions, on_record: impl FnMut(&[u8])) -> Result<(Self, Replay), Error> {
        Self::open_from(directory, options, 0, on_record)
    }

    /// Like [`Wal::open`], but segments numbered below `first_segment` are
    /// redundant (a checkpoint holds their records): they are removed, not
    /// replayed, and the active segment is numbered at least `first_segment`.
    pub fn open_from(
        directory: &Path,
        options: WalOptions,
        first_segment: u64,
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<(Self, Replay), Error> {
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        let mut numbers = segments(directory)?;
        let redundant = numbers.partition_point(|&number| number < first_segment);
        for number in numbers.drain(..redundant) {
            let path = segment_path(directory, number);
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
        if redundant > 0 {
            tracing::info!(segments = redundant, first_segment, "write-ahead log segments covered by a block removed");
        }
        let mut replay = Replay::default();
        let mut last_number = 0;
        for (index, &number) in numbers.iter().enumerate() {
            let path = segment_path(directory, number);
            let (records, valid, damage) = read_segment(&path, &mut on_record)?;
            replay.records += records;
            last_number = number;
            if let Some(damage) = damage {
                let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
                file.set_len(valid).map_err(io_error(&path))?;
                file.sync_all().map_err(io_error(&path))?;
                let later = &numbers[index + 1..];
                let message = format!(
                    "{}: {damage}; truncated to {valid} bytes{}",
                    path.display(),
                    if later.is_empty() { String::new() } else { format!(", {} later segments removed", later.len()) }
                );
                tracing::warn!(repair = %message, "write-ahead log repaired");
                for &removed in later {
                    let removed_path = segment_path(directory, removed);
                    fs::remove_file(&removed_path).map_err(io_error(&removed_path))?;
                }
                replay.repairs.push(message);
                break;
            }
        }
        let number = last_number.max(first_segment).max(1);
        let path = segment_path(directory, number);
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(io_error(&path))?;
        let bytes = file.seek(SeekFrom::End(0)).map_err(io_error(&path))?;
        sync_directory(directory)?;
        let active = Active { file, path, number, bytes, written: 0, synced: 0, last_sync: Instant::now() };
        let wal =
            Self { directory: directory.to_owned(), options, active: Mutex::new(active), sync_lock: Mutex::new(()) };
        Ok((wal, replay))
    }

    /// Appends one record. See the module documentation for when it is durable.
    pub fn append(&self, payload: &[u8]) -> Result<(), Error> {
        self.append_many(std::slice::from_ref(&payload))
    }

    /// Appends several records with one write, durable per the fsync policy.
    pub fn append_many(&self, payloads: &[&[u8]]) -> Result<(), Error> {
        let sequence = self.write(payloads)?;
        self.commit(sequence)
    }

    /// Writes records to the segment file without waiting for fsync; returns
    /// the sequence number to pass to [`Wal::commit`]. Writes keep their order:
    /// callers that need records ordered with other state write under their lock
    /// and commit after releasing it, so that fsyncs are shared.
    pub fn write(&self, payloads: &[&[u8]]) -> Result<u64, Error> {
        let mut frame = Vec::with_capacity(payloads.iter().map(|payload| payload.len() + HEADER_BYTES).sum());
        for payload in payloads {
            if payload.len() > MAX_RECORD_BYTES {
                return Err(Error::RecordTooLarge { size: payload.len() });
            }
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            frame.extend_from_slice(payload);
        }
        let mut active = self.active.lock();
        if active.bytes > 0 && active.bytes + frame.len() as u64 > self.options.segment_bytes {
            self.roll(&mut active)?;
        }
        active.file.write_all(&frame).map_err(io_error(&active.path))?;
        active.bytes += frame.len() as u64;
        active.written += 1;
        Ok(active.written)
    }

    /// Makes the writes up to `sequence` as durable as the fsync policy asks.
    pub fn commit(&self, sequence: u64) -> Result<(), Error> {
        match self.options.fsync {
            FsyncPolicy::Always => self.sync_through(sequence),
            FsyncPolicy::Interval(interval) => {
                let due = self.active.lock().last_sync.elapsed() >= interval;
                if due { self.sync() } else { Ok(()) }
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Closes the active segment (fsynced) and starts the next one.
    fn roll(&self, active: &mut Active) -> Result<(), Error> {
        active.file.sync_all().map_err(io_error(&active.path))?;
        let number = active.number + 1;
        let path = segment_path(&self.directory, number);
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(io_error(&path))?;
        sync_directory(&self.directory)?;
        active.synced = active.written;
        *active = Active {
            file,
            path,
            number,
            bytes: 0,
            written: active.written,
            synced: active.written,
            last_sync: Instant::now(),
        };
        Ok(())
    }

    /// Fsyncs everything written so far.
    pub fn sync(&self) -> Result<(), Error> {
        let sequence = self.active.lock().written;
        self.sync_through(sequence)
    }

    /// Group commit: fsyncs unless another writer's fsync already covered `sequence`.
    fn sync_through(&self, sequence: u64) -> Result<(), Error> {
        let _guard = self.sync_lock.lock();
        let (file, path, covered) = {
            let active = self.active.lock();
            if active.synced >= sequence {
                return Ok(());
            }
            let file = active.file.try_clone().map_err(io_error(&active.path))?;
            (file, active.path.clone(), active.written)
        };
        file.sync_data().map_err(io_error(&path))?;
        let mut active = self.active.lock();
        active.synced = active.synced.max(covered);
        active.last_sync = Instant::now();
        Ok(())
    }

    /// Starts a new segment and returns its number: records appended from now on
    /// are in segments numbered at least that.
    pub fn cut(&self) -> Result<u64, Error> {
        let mut active = self.active.lock();
        self.roll(&mut active)?;
        Ok(active.number)
    }

    /// Removes every segment numbered below `number` (after a checkpoint).
    pub fn remove_segments_before(&self, number: u64) -> Result<usize, Error> {
        let active = self.active.lock().number;
        let mut removed = 0;
        for segment in segments(&self.directory)? {
            if segment < number && segment < active {
                let path = segment_path(&self.directory, segment);
                fs::remove_file(&path).map_err(io_error(&path))?;
                removed += 1;
            }
        }
        sync_directory(&self.directory)?;
        Ok(removed)
    }

    /// The number of the segment being appended to.
    pub fn active_segment(&self) -> u64 {
        self.active.lock().number
    }

    /// Bytes held by all segments.
    pub fn size_bytes(&self) -> u64 {
        segments(&self.directory)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|number| fs::metadata(segment_path(&self.directory, number)).ok())
            .map(|metadata| metadata.len())
            .sum()
    }
}

fn sync_directory(directory: &Path) -> Result<(), Error> {
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(io_error(directory))
}
