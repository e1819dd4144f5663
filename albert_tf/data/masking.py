"""N-gram whole-word masking, with the semantics of the original
`create_masked_lm_predictions` and every draw taken from the given seeded generator."""

import itertools


class MaskingRule:
    """The masking parameters, and tables over the vocabulary.

    Args:
      vocab_size: number of ids.
      is_word_start: a list of bool over ids; False marks pieces that continue a word.
      cls_id, sep_id, mask_id: special ids. [CLS]/[SEP] are never masked.
      excluded_replacement_ids: ids never drawn as the random 10% replacement (the
        special tokens; the original could draw them).
      masked_lm_prob, max_predictions_per_seq, ngram, favor_shorter_ngram,
      do_whole_word_mask: as the original flags.
    """

    def __init__(
        self,
        vocab_size,
        is_word_start,
        cls_id,
        sep_id,
        mask_id,
        excluded_replacement_ids=(),
        masked_lm_prob=0.15,
        max_predictions_per_seq=20,
        ngram=3,
        favor_shorter_ngram=True,
        do_whole_word_mask=True,
    ):
        self.is_word_start = is_word_start
        self.cls_id, self.sep_id, self.mask_id = cls_id, sep_id, mask_id
        excluded = set(excluded_replacement_ids)
        self.replacement_ids = [i for i in range(vocab_size) if i not in excluded]
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.ngram = ngram
        self.do_whole_word_mask = do_whole_word_mask
        weights = [1.0 / n for n in range(1, ngram + 1)]
        if not favor_shorter_ngram:
            weights = weights[::-1]
        # Cumulative distribution of n over 1..ngram (p ∝ 1/n by default).
        total = sum(weights)
        self.ngram_cdf = list(itertools.accumulate(w / total for w in weights))

    def _draw_ngram(self, rng):
        u = rng.random()
        for n, bound in enumerate(self.ngram_cdf, start=1):
            if u < bound:
                return n
        return self.ngram

    def apply(self, ids, rng):
        """Masks a packed sequence `ids` (list of int, with [CLS]/[SEP]).

        Returns (output_ids, positions, labels, token_boundary). Positions are sorted
        and unique. Labels are the original ids. token_boundary is 1 at word starts and
        at [CLS]/[SEP].
        """
        special = (self.cls_id, self.sep_id)
        word_start = self.is_word_start
        token_boundary = [0] * len(ids)
        words = []  # candidate words: lists of token positions
        for i, token in enumerate(ids):
            if token in special:
                token_boundary[i] = 1
                continue
            starts = word_start[token]
            if self.do_whole_word_mask and words and not starts:
                words[-1].append(i)
            else:
                words.append([i])
                if starts:
                    token_boundary[i] = 1
        output = list(ids)
        if self.masked_lm_prob == 0 or not words:
            return output, [], [], token_boundary
        budget = min(self.max_predictions_per_seq, max(1, int(round(len(ids) * self.masked_lm_prob))))
        starts = list(range(len(words)))
        rng.shuffle(starts)
        masked = {}
        for start in starts:
            if len(masked) >= budget:
                break
            n = self._draw_ngram(rng)
            # Fall back to shorter n-grams while the span would overrun the budget.
            while n > 1 and len(masked) + sum(len(w) for w in words[start : start + n]) > budget:
                n -= 1
            span = [i for w in words[start : start + n] for i in w]
            if len(masked) + len(span) > budget or any(i in masked for i in span):
                continue
            for i in span:
                masked[i] = ids[i]
                if rng.random() < 0.8:
                    output[i] = self.mask_id
                elif rng.random() >= 0.5:
                    output[i] = self.replacement_ids[rng.randrange(len(self.replacement_ids))]
        positions = sorted(masked)
        return output, positions, [masked[i] for i in positions], token_boundary
