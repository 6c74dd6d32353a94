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
//! Ordering and group commit: [`Wal::write`] only frames the records into a
//! buffer in memory (fixing their place in the log), which is cheap enough to
//! do under a caller's lock; [`Wal::commit`] then writes everything buffered
//! so far to the file with one `write` and fsyncs per the policy, outside that
//! lock. One caller's write and fsync carry every record buffered before it,
//! so concurrent writers share both syscalls. A record is in the file (and
//! survives the process being killed) once `commit` returned for it.
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

/// The active segment's bookkeeping and the records framed but not yet in the file.
struct Active {
    number: u64,
    /// The segment's size once `pending` is in it.
    bytes: u64,
    /// Framed records not yet written to the file, in log order.
    pending: Vec<u8>,
    /// Calls of [`Wal::write`], counted since open: the sequence numbers of
    /// the last one framed, the last one in the file, the last one fsynced.
    written: u64,
    flushed: u64,
    synced: u64,
    last_sync: Instant,
}

/// The active segment's file. Held while writing to it; taken before `Active`.
struct Writer {
    file: File,
    path: PathBuf,
    /// The buffer swapped with `Active::pending` at each flush, so neither is reallocated.
    spare: Vec<u8>,
}

/// An open write-ahead log.
pub struct Wal {
    directory: PathBuf,
    options: WalOptions,
    writer: Mutex<Writer>,
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
        let active =
            Active { number, bytes, pending: Vec::new(), written: 0, flushed: 0, synced: 0, last_sync: Instant::now() };
        let wal = Self {
            directory: directory.to_owned(),
            options,
            writer: Mutex::new(Writer { file, path, spare: Vec::new() }),
            active: Mutex::new(active),
            sync_lock: Mutex::new(()),
        };
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

    /// Frames records into the log's buffer without writing or fsyncing them;
    /// returns the sequence number to pass to [`Wal::commit`], which writes
    /// them to the file. Records keep the order of these calls: callers that
    /// need records ordered with other state call this under their lock and
    /// commit after releasing it, so that writes and fsyncs are shared.
    pub fn write(&self, payloads: &[&[u8]]) -> Result<u64, Error> {
        let frame_bytes: usize = payloads.iter().map(|payload| payload.len() + HEADER_BYTES).sum();
        if let Some(payload) = payloads.iter().find(|payload| payload.len() > MAX_RECORD_BYTES) {
            return Err(Error::RecordTooLarge { size: payload.len() });
        }
        let mut active = self.active.lock();
        if active.bytes > 0 && active.bytes + frame_bytes as u64 > self.options.segment_bytes {
            drop(active);
            let mut writer = self.writer.lock();
            active = self.active.lock();
            if active.bytes > 0 && active.bytes + frame_bytes as u64 > self.options.segment_bytes {
                self.roll(&mut writer, &mut active)?;
            }
        }
        active.pending.reserve(frame_bytes);
        for payload in payloads {
            active.pending.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            active.pending.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            active.pending.extend_from_slice(payload);
        }
        active.bytes += frame_bytes as u64;
        active.written += 1;
        Ok(active.written)
    }

    /// Makes the writes up to `sequence` as durable as the fsync policy asks:
    /// always in the file, and fsynced under [`FsyncPolicy::Always`] (or when
    /// the interval is due).
    pub fn commit(&self, sequence: u64) -> Result<(), Error> {
        self.flush_through(sequence)?;
        match self.options.fsync {
            FsyncPolicy::Always => self.sync_through(sequence),
            FsyncPolicy::Interval(interval) => {
                let due = self.active.lock().last_sync.elapsed() >= interval;
                if due { self.sync() } else { Ok(()) }
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Writes the buffered records to the file unless an earlier flush
    /// already wrote the write `sequence`; one flush carries every record
    /// buffered when it starts.
    fn flush_through(&self, sequence: u64) -> Result<(), Error> {
        if self.active.lock().flushed >= sequence {
            return Ok(());
        }
        let mut writer = self.writer.lock();
        let mut active = self.active.lock();
        if active.flushed >= sequence {
            return Ok(());
        }
        self.flush(&mut writer, &mut active)
    }

    /// Writes `active.pending` to the file; `active` is unlocked meanwhile, so
    /// other callers keep framing records (the writer lock keeps flushes in order).
    fn flush(&self, writer: &mut Writer, active: &mut parking_lot::MutexGuard<'_, Active>) -> Result<(), Error> {
        if active.pending.is_empty() {
            active.flushed = active.written;
            return Ok(());
        }
        std::mem::swap(&mut writer.spare, &mut active.pending);
        let through = active.written;
        let written = parking_lot::MutexGuard::unlocked(active, || writer.file.write_all(&writer.spare));
        writer.spare.clear();
        written.map_err(io_error(&writer.path))?;
        active.flushed = active.flushed.max(through);
        Ok(())
    }

    /// Writes what is buffered, closes the active segment (fsynced) and starts
    /// the next one. `active` stays locked throughout, so no record is framed
    /// meanwhile: every record framed before lands in the closed segment.
    fn roll(&self, writer: &mut Writer, active: &mut Active) -> Result<(), Error> {
        if !active.pending.is_empty() {
            writer.file.write_all(&active.pending).map_err(io_error(&writer.path))?;
            active.pending.clear();
        }
        writer.file.sync_all().map_err(io_error(&writer.path))?;
        let number = active.number + 1;
        let path = segment_path(&self.directory, number);
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(io_error(&path))?;
        sync_directory(&self.directory)?;
        writer.file = file;
        writer.path = path;
        active.number = number;
        active.bytes = 0;
        active.flushed = active.written;
        active.synced = active.written;
        active.last_sync = Instant::now();
        Ok(())
    }

    /// Writes and fsyncs everything written so far.
    pub fn sync(&self) -> Result<(), Error> {
        let sequence = self.active.lock().written;
        self.flush_through(sequence)?;
        self.sync_through(sequence)
    }

    /// Group commit: fsyncs unless another writer's fsync already covered
    /// `sequence`, which must be in the file already.
    fn sync_through(&self, sequence: u64) -> Result<(), Error> {
        let _guard = self.sync_lock.lock();
        if self.active.lock().synced >= sequence {
            return Ok(());
        }
        let (file, path, covered) = {
            let writer = self.writer.lock();
            let covered = self.active.lock().flushed;
            (writer.file.try_clone().map_err(io_error(&writer.path))?, writer.path.clone(), covered)
        };
        file.sync_data().map_err(io_error(&path))?;
        let mut active = self.active.lock();
        active.synced = active.synced.max(covered);
        active.last_sync = Instant::now();
        Ok(())
    }

    /// Starts a new segment and returns its number: records written from now on
    /// are in segments numbered at least that.
    pub fn cut(&self) -> Result<u64, Error> {
        let mut writer = self.writer.lock();
        let mut active = self.active.lock();
        self.roll(&mut writer, &mut active)?;
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

impl Drop for Wal {
    /// Records framed but never committed still go to the file (not fsynced).
    fn drop(&mut self) {
        let writer = self.writer.get_mut();
        let active = self.active.get_mut();
        if !active.pending.is_empty()
            && let Err(error) = writer.file.write_all(&active.pending)
        {
            tracing::warn!(path = %writer.path.display(), error = %error, "write-ahead log records lost at close");
        }
    }
}

fn sync_directory(directory: &Path) -> Result<(), Error> {
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(io_error(directory))
}
