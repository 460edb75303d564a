// sentencepiece_shim.cc: the sentencepiece backend of tokenizer.h, a thin
// extern "C" layer over libsentencepiece 0.1.97 (Debian's libsentencepiece-dev).
// The project's only C++ (C++17: the library's headers use std::string_view).
// Every call catches C++ exceptions at the boundary and reports them in err.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/backends.h"
#include "tokenizer/tokenizer.h"

// Exported by the library but missing from its installed headers.
namespace sentencepiece {
namespace logging {
void SetMinLogLevel(int v);
}
}  // namespace sentencepiece

namespace {

// Training reads sentences from memory, one per paragraph: the text up to and
// including a blank line ("\n\n"), newlines kept. Fed this way newlines can merge
// into pieces (the library's file reader would drop them line by line). A
// paragraph longer than kMaxSentence is cut at its last newline (or, with none,
// at a UTF-8 boundary) so the trainer never skips one as too long.
constexpr size_t kMaxSentence = 1 << 16;
// The trainer's thread count is pinned: unigram training depends on it (BPE does
// not), and a tokenizer must come out the same on every machine.
constexpr int kTrainThreads = 4;
constexpr int kLogErrorsOnly = 2;  // the library's levels: 0 info, 1 warning, 2 error

class ParagraphIterator : public sentencepiece::SentenceIterator {
   public:
    ParagraphIterator(const char* text, size_t len) : text_(text), len_(len) { Next(); }
    bool done() const override { return done_; }
    const std::string& value() const override { return value_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }  // ok
    void Next() override {
        if (pos_ >= len_) { done_ = true; return; }
        size_t limit = std::min(len_, pos_ + kMaxSentence), end = pos_;
        while (end < limit && !ends_paragraph(++end)) {}
        if (!ends_paragraph(end) && end < len_) {  // too long: cut at its last newline
            size_t cut = end;
            while (cut > pos_ && text_[cut - 1] != '\n') cut--;
            if (cut == pos_) {  // no newline at all: at the start of a UTF-8 character
                cut = end;
                while (cut > pos_ + 1 && (static_cast<unsigned char>(text_[cut]) & 0xC0) == 0x80) cut--;
            }
            end = cut;
        }
        value_.assign(text_ + pos_, end - pos_);
        pos_ = end;
    }

   private:
    bool ends_paragraph(size_t end) const { return end >= pos_ + 2 && text_[end - 1] == '\n' && text_[end - 2] == '\n'; }
    const char* text_;
    size_t len_, pos_ = 0;
    bool done_ = false;
    std::string value_;
};

void set_err(char* err, size_t errlen, const std::string& msg) {
    if (err && errlen) std::snprintf(err, errlen, "%s", msg.c_str());
}

// Length of the well-formed UTF-8 character at s (n >= 1 bytes left), or 0 for a
// byte that starts none: the library's DecodeUTF8 rule (no overlong forms, no
// surrogates, nothing past U+10FFFF). The library turns each such byte into U+FFFD,
// three byte pieces for one byte of text; spm_encode gives it one id instead.
size_t utf8_char_len(const unsigned char* s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; lo = c == 0xE0 ? 0xA0 : lo; hi = c == 0xED ? 0x9F : hi; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; lo = c == 0xF0 ? 0x90 : lo; hi = c == 0xF4 ? 0x8F : hi; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

// The library's advice for a vocab_size below what the text needs ("Vocabulary
// size is smaller than required_chars. 200 vs 230. Increase vocab_size or decrease
// character_coverage with --character_coverage option.") names an option this
// project does not have: character_coverage stays 1.0, so that every character
// keeps a piece and text round-trips. Say what can be changed instead.
std::string advise_vocab_size(const std::string& msg) {
    size_t at = msg.find("Increase vocab_size or decrease character_coverage");
    if (at == std::string::npos) return msg;
    std::string need;
    size_t vs = msg.rfind(" vs ", at);
    if (vs != std::string::npos)
        for (size_t i = vs + 4; i < at && std::isdigit(static_cast<unsigned char>(msg[i])); i++) need += msg[i];
    return msg.substr(0, at) + "Raise vocab_size" + (need.empty() ? "" : " to at least " + need) +
           " (the text's distinct characters, plus 256 byte pieces and <unk>), or use tokenizer = char or byte";
}

}  // namespace

struct SpmModel {
    sentencepiece::SentencePieceProcessor processor;
};

extern "C" {

int spm_available(void) { return 1; }

SpmModel* spm_train(const unsigned char* text, size_t len, int vocab_size, int unigram, char* err, size_t errlen) {
    try {
        sentencepiece::logging::SetMinLogLevel(kLogErrorsOnly);
        // Lossless on ordinary text: no normalisation, whitespace kept as it is, no
        // space invented at the start, and any byte without a piece of its own
        // encoded as a <0xHH> byte piece.
        std::unordered_map<std::string, std::string> args = {
            {"model_type", unigram ? "unigram" : "bpe"},
            {"vocab_size", std::to_string(vocab_size)},
            {"normalization_rule_name", "identity"},
            {"remove_extra_whitespaces", "false"},
            {"add_dummy_prefix", "false"},
            {"byte_fallback", "true"},
            {"character_coverage", "1.0"},
            {"max_sentence_length", std::to_string(kMaxSentence)},
            {"num_threads", std::to_string(kTrainThreads)},
            {"bos_id", "-1"},  // the model never sees sentence markers: no ids for them
            {"eos_id", "-1"},
            {"minloglevel", std::to_string(kLogErrorsOnly)},
        };
        ParagraphIterator sentences(reinterpret_cast<const char*>(text), len);
        std::string proto;
        auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &proto);
        if (!status.ok()) {
            set_err(err, errlen, "SentencePiece training failed: " + advise_vocab_size(status.ToString()));
            return nullptr;
        }
        return spm_load(reinterpret_cast<const unsigned char*>(proto.data()), proto.size(), err, errlen);
    } catch (const std::exception& e) {
        set_err(err, errlen, std::string("SentencePiece training failed: ") + e.what());
        return nullptr;
    }
}

SpmModel* spm_load(const unsigned char* proto, size_t len, char* err, size_t errlen) {
    try {
        // owned here until returned: the library throws on some malformed models
        // (darts_clone on an empty piece), and the model must not leak then
        auto m = std::make_unique<SpmModel>();
        auto status = m->processor.LoadFromSerializedProto(
            std::string_view(reinterpret_cast<const char*>(proto), len));
        if (!status.ok()) {
            set_err(err, errlen, "not a SentencePiece model: " + status.ToString());
            return nullptr;
        }
        if (m->processor.GetPieceSize() > TOKENIZER_MAX_VOCAB) {
            set_err(err, errlen, "SentencePiece model has " + std::to_string(m->processor.GetPieceSize()) +
                                     " pieces, more than uint16 ids can hold");
            return nullptr;
        }
        return m.release();
    } catch (const std::exception& e) {
        set_err(err, errlen, std::string("loading a SentencePiece model failed: ") + e.what());
        return nullptr;
    }
}

unsigned char* spm_serialize(const SpmModel* m, size_t* len) {
    try {
        std::string proto = m->processor.serialized_model_proto();
        unsigned char* buf = static_cast<unsigned char*>(std::malloc(proto.size() ? proto.size() : 1));
        if (!buf) return nullptr;
        std::memcpy(buf, proto.data(), proto.size());
        *len = proto.size();
        return buf;
    } catch (const std::exception&) {
        return nullptr;
    }
}

void spm_free(SpmModel* m) { delete m; }

int spm_vocab_size(const SpmModel* m) { return m->processor.GetPieceSize(); }

// The id of the byte piece <0xHH> (models trained here have all 256: byte
// fallback), or the unknown piece's.
static int byte_piece_id(const SpmModel* m, unsigned char b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    int id = m->processor.PieceToId(name);
    return m->processor.IsByte(id) ? id : m->processor.unk_id();
}

// The text is encoded in runs of valid UTF-8; each byte between them (not UTF-8)
// becomes its byte piece, one id, so that no text makes more ids than bytes (the
// promise of tokenizer.h). It does not decode back (the library decodes a stray
// byte piece to U+FFFD): tokenizer_check_roundtrip names it.
long spm_encode(const SpmModel* m, const unsigned char* text, size_t len, uint16_t* ids, size_t cap, char* err,
                size_t errlen) {
    try {
        std::vector<int> out, run;
        for (size_t at = 0; at < len;) {
            size_t end = at, k;
            while (end < len && (k = utf8_char_len(text + end, len - end)) != 0) end += k;
            if (end > at) {
                auto status = m->processor.Encode(
                    std::string_view(reinterpret_cast<const char*>(text + at), end - at), &run);
                if (!status.ok()) { set_err(err, errlen, "SentencePiece encode failed: " + status.ToString()); return -1; }
                out.insert(out.end(), run.begin(), run.end());
            }
            if (end < len) out.push_back(byte_piece_id(m, text[end++]));
            at = end;
        }
        // a model without byte pieces or a valid unknown piece (a damaged one) can hand
        // out an id outside [0, size), e.g. unk_id -1: such ids must never reach the model
        int size = m->processor.GetPieceSize();
        for (size_t i = 0; i < out.size(); i++)
            if (out[i] < 0 || out[i] >= size) {
                set_err(err, errlen, "this SentencePiece model gives id " + std::to_string(out[i]) + " at position " +
                                         std::to_string(i) + ", outside its vocabulary [0, " + std::to_string(size) +
                                         "): it lacks a byte or unknown piece (a damaged model?)");
                return -1;
            }
        if (out.size() > len) {  // a model that lengthens text: normalisation rules, a dummy prefix
            set_err(err, errlen, "this SentencePiece model makes " + std::to_string(out.size()) + " ids of " +
                                     std::to_string(len) + (len == 1 ? " byte" : " bytes") + ", more ids than "
                                     "bytes: its normaliser or dummy prefix lengthens text (tokenizers that "
                                     "./prepare trains never do)");
            return -1;
        }
        if (out.size() > cap) {
            set_err(err, errlen, "output holds " + std::to_string(cap) + " ids, the text needs " +
                                     std::to_string(out.size()));
            return -1;
        }
        for (size_t i = 0; i < out.size(); i++) ids[i] = static_cast<uint16_t>(out[i]);
        return static_cast<long>(out.size());
    } catch (const std::exception& e) {
        set_err(err, errlen, std::string("SentencePiece encode failed: ") + e.what());
        return -1;
    }
}

char* spm_decode(const SpmModel* m, const uint16_t* ids, size_t n, size_t* out_len, char* err, size_t errlen) {
    try {
        int size = m->processor.GetPieceSize();
        std::vector<int> in(n);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] >= size) {
                set_err(err, errlen, "id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                                         " is outside the vocabulary [0, " + std::to_string(size) + ")");
                return nullptr;
            }
            in[i] = ids[i];
        }
        std::string text;
        auto status = m->processor.Decode(in, &text);
        if (!status.ok()) { set_err(err, errlen, "SentencePiece decode failed: " + status.ToString()); return nullptr; }
        char* out = static_cast<char*>(std::malloc(text.size() + 1));
        if (!out) { set_err(err, errlen, "out of memory decoding " + std::to_string(n) + " ids"); return nullptr; }
        std::memcpy(out, text.data(), text.size());
        out[text.size()] = 0;
        *out_len = text.size();
        return out;
    } catch (const std::exception& e) {
        set_err(err, errlen, std::string("SentencePiece decode failed: ") + e.what());
        return nullptr;
    }
}

const char* spm_piece(const SpmModel* m, int id) {
    if (id < 0 || id >= m->processor.GetPieceSize()) return nullptr;
    return m->processor.IdToPiece(id).c_str();
}

int spm_piece_to_id(const SpmModel* m, const char* piece) {
    int id = m->processor.PieceToId(piece);
    // the library answers unk_id for a piece it does not know
    if (id == m->processor.unk_id() && m->processor.IdToPiece(id) != piece) return -1;
    return id;
}

}  // extern "C"
