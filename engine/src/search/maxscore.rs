//! MaxScore over one segment's term postings: the top rows of a disjunction of terms without
//! visiting every row that matches one of them.
//!
//! Terms are ordered by the most any one row can score on them (their upper bound). While the
//! bounds of the weakest terms add up to no more than the score a row needs to enter the top
//! (the threshold), a row matching only those cannot enter: they are *non-essential*, and rows
//! are found by walking the *essential* terms' postings alone. The non-essential terms are then
//! looked up for each such row, strongest first, and the look-ups stop as soon as what they could
//! still add cannot lift the row over the threshold. As the threshold rises, more terms become
//! non-essential. Each posting block also records the most a row in it can score on its term:
//! when the blocks the essential terms are in cannot lift any row over the threshold together,
//! the walk jumps past the first of them to end. This is block-max MaxScore, the algorithm Lucene
//! uses for long disjunctions; tantivy's block-max WAND re-sorts every term's cursor at every
//! step, which costs most on the 10–20-term queries agents send.

use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::BlockSegmentPostings;
use tantivy::query::{Bm25Weight, EnableScoring};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Score, SegmentReader, TERMINATED, Term};

/// Rows per posting block (tantivy's compression block).
const BLOCK: usize = 128;

/// Bounds are widened by this factor so that a sum rounded differently is never cut off.
const SLACK: Score = 1.0 + 1e-5;

/// A term to score by BM25, with the most one row can score on it.
pub(super) struct Clause {
    term: Term,
    weight: Bm25Weight,
}

impl Clause {
    /// `scoring` must be enabled: its statistics give the term's BM25 weight.
    pub(super) fn new(term: Term, scoring: EnableScoring<'_>) -> tantivy::Result<Clause> {
        let EnableScoring::Enabled {
            statistics_provider,
            ..
        } = scoring
        else {
            return Err(tantivy::TantivyError::InvalidArgument(
                "BM25 needs scoring enabled".to_string(),
            ));
        };
        let weight = Bm25Weight::for_terms(statistics_provider, std::slice::from_ref(&term))?;
        Ok(Clause { term, weight })
    }
}

/// One term's postings in one segment, a row at a time, with the block it is in.
struct Cursor {
    postings: BlockSegmentPostings,
    /// The row's place in the loaded block.
    at: usize,
    fieldnorms: FieldNormReader,
    weight: Bm25Weight,
    max_score: Score,
}

impl Cursor {
    #[inline]
    fn doc(&self) -> DocId {
        self.postings.doc(self.at)
    }

    #[inline]
    fn advance(&mut self) {
        if self.at == BLOCK - 1 {
            self.at = 0;
            self.postings.advance();
        } else {
            self.at += 1;
        }
    }

    /// To the first row at or after `target`.
    #[inline]
    fn seek(&mut self, target: DocId) {
        if self.doc() < target {
            self.at = self.postings.seek(target);
        }
    }

    #[inline]
    fn score(&self) -> Score {
        let doc = self.doc();
        self.weight.score(
            self.fieldnorms.fieldnorm_id(doc),
            self.postings.freq(self.at),
        )
    }

    /// The last row of the loaded block.
    fn block_last(&self) -> DocId {
        self.postings.docs().last().copied().unwrap_or(TERMINATED)
    }

    /// The most a row of the loaded block scores on this term.
    fn block_max(&mut self) -> Score {
        self.postings
            .block_max_score(&self.fieldnorms, &self.weight)
            .min(self.max_score)
    }
}

/// Calls `callback` with every row of `reader` matching any of `clauses` whose score may exceed
/// `threshold` (every row scoring above it is passed; some below may be), in row order;
/// `callback` returns the new threshold, which never goes down. A row's score is its terms' BM25
/// scores summed, in one order whatever the row.
///
/// With `block_max`, stretches are skipped by the maxima tantivy records per posting block. It
/// records the (length, frequency) pair scoring best under the segment's own average length, so
/// under other statistics (the document level's, whose average is over documents, not rows) a
/// block's maximum can be another row's, and only the terms' own bounds are safe. At chunk level
/// the collection's average differs from a segment's by little, and tantivy's own block-max WAND
/// makes the same trade.
pub(super) fn for_each_pruning(
    clauses: &[Clause],
    field: tantivy::schema::Field,
    block_max: bool,
    reader: &SegmentReader,
    mut threshold: Score,
    callback: &mut dyn FnMut(DocId, Score) -> Score,
) -> tantivy::Result<()> {
    let index = reader.inverted_index(field)?;
    let fieldnorms = reader.get_fieldnorms_reader(field)?;
    let mut cursors: Vec<Cursor> = Vec::with_capacity(clauses.len());
    for clause in clauses {
        let Some(postings) =
            index.read_block_postings(&clause.term, IndexRecordOption::WithFreqs)?
        else {
            continue;
        };
        let cursor = Cursor {
            postings,
            at: 0,
            fieldnorms: fieldnorms.clone(),
            weight: clause.weight.clone(),
            max_score: clause.weight.max_score(),
        };
        if cursor.doc() != TERMINATED {
            cursors.push(cursor);
        }
    }
    // Weakest first; `bound[i]`: the most terms 0..=i can add to a row together.
    cursors.sort_by(|a, b| a.max_score.total_cmp(&b.max_score));
    let mut bound = Vec::with_capacity(cursors.len());
    let mut sum = 0.0f32;
    for cursor in &cursors {
        sum += cursor.max_score;
        bound.push(sum * SLACK);
    }
    // Terms before `essential` cannot lift a row over the threshold on their own.
    let essential_from = |threshold: Score| bound.iter().take_while(|&&b| b <= threshold).count();
    let mut essential = essential_from(threshold);
    let mut share = vec![0.0f32; cursors.len()];
    // The block window the rows are in, computed once per window rather than once per row.
    let mut window: Option<Window> = None;
    while essential < cursors.len() {
        let doc = cursors[essential..]
            .iter()
            .map(Cursor::doc)
            .min()
            .unwrap_or(TERMINATED);
        if doc == TERMINATED {
            break;
        }
        if block_max {
            let w = match window {
                Some(w) if doc <= w.end => w,
                _ => Window::at(&mut cursors[essential..], bound_below(&bound, essential)),
            };
            if w.max <= threshold {
                // A row was found, so some cursor is live and the window ends at a real row.
                for cursor in &mut cursors[essential..] {
                    cursor.seek(w.end + 1);
                }
                window = None;
                continue;
            }
            window = Some(w);
        }
        // Each term's share, summed in one order at the end: a row scores the same to the last
        // bit whichever of its terms were essential when it was found.
        share.fill(0.0);
        let mut score = 0.0;
        for (i, cursor) in cursors.iter_mut().enumerate().skip(essential) {
            if cursor.doc() == doc {
                share[i] = cursor.score();
                score += share[i];
                cursor.advance();
            }
        }
        let mut complete = true;
        for i in (0..essential).rev() {
            if (score + bound[i]) * SLACK <= threshold {
                complete = false;
                break;
            }
            let cursor = &mut cursors[i];
            cursor.seek(doc);
            if cursor.doc() == doc {
                share[i] = cursor.score();
                score += share[i];
            }
        }
        if !complete {
            continue;
        }
        let score: Score = share.iter().sum();
        if score > threshold {
            threshold = callback(doc, score);
            essential = essential_from(threshold);
        }
    }
    Ok(())
}

/// The most the terms before `essential` can add to a row together.
fn bound_below(bound: &[Score], essential: usize) -> Score {
    if essential == 0 {
        0.0
    } else {
        bound[essential - 1]
    }
}

/// A stretch of rows up to the end of the first of the essential terms' loaded blocks, and the
/// most a row in it can score: their blocks' maxima and what the other terms can add together.
///
/// It stays an upper bound while the rows are in it, even after the threshold rises and some of
/// its terms stop being essential: their blocks still hold every row of theirs in it.
#[derive(Clone, Copy)]
struct Window {
    end: DocId,
    max: Score,
}

impl Window {
    /// The window the essential cursors are at, `below` being the most the other terms add. (A
    /// term whose postings have run out adds nothing: its cursor is on the padding after its
    /// last block's rows, which would otherwise give a window ending behind the row.)
    fn at(essential: &mut [Cursor], below: Score) -> Window {
        let mut max = below;
        let mut end = TERMINATED;
        for cursor in essential.iter_mut() {
            if cursor.doc() != TERMINATED {
                max += cursor.block_max() * SLACK;
                end = end.min(cursor.block_last());
            }
        }
        Window { end, max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{Index, doc};

    /// A stretch skipped on block maxima ends where the first essential block ends. Rows in
    /// order in one segment: the frequent term's weak blocks and the rare term's one weak block
    /// are skipped together, and the best row is in a strong block of the frequent term that
    /// lies inside the rare term's weak block.
    #[test]
    fn a_skip_stops_at_the_first_block_end() {
        let mut builder = Schema::builder();
        let text = builder.add_text_field("text", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index.writer_with_num_threads(1, 50_000_000).unwrap();
        let pad = |n: usize| vec!["pad"; n].join(" ");
        for i in 0..4000 {
            let body = match i {
                0 => "often often".to_string(),
                905 => ["often"; 6].join(" "),
                1..128 => format!("often seldom {}", pad(1500)),
                128..1300 if i % 10 == 1 => format!("often seldom {}", pad(1500)),
                128..1300 => format!("often {}", pad(200)),
                _ => pad(50),
            };
            writer.add_document(doc!(text => body)).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        let scoring = EnableScoring::enabled_from_searcher(&searcher);
        let clauses: Vec<Clause> = ["often", "seldom"]
            .iter()
            .map(|w| Clause::new(Term::from_field_text(text, w), scoring).unwrap())
            .collect();
        let reader = &searcher.segment_readers()[0];
        for block_max in [false, true] {
            let mut best: Option<(DocId, Score)> = None;
            for_each_pruning(&clauses, text, block_max, reader, 0.0, &mut |doc, score| {
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((doc, score));
                }
                best.map_or(0.0, |(_, s)| s)
            })
            .unwrap();
            assert_eq!(best.map(|b| b.0), Some(905), "block maxima: {block_max}");
        }
    }
}
