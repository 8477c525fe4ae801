// Differential reference for the server's JSON-schema converter (JsonSchemaGrammarReferenceTest).
// Built at test time against the pinned llama.cpp tree: its common/json-schema-to-grammar.cpp
// (compiled into this program) and the grammar engine of libllama (llama-grammar.h, whose
// symbols libllama exports). Two commands:
//   schema_grammar_ref gbnf SCHEMA_FILE           -> llama.cpp's GBNF for the schema on stdout (exit 2: converter error)
//   schema_grammar_ref match GRAMMAR_FILE DOC...  -> one line per document: 1 accepted, 0 rejected (exit 3: bad grammar)
#include "json-schema-to-grammar.h"
#include "json.h"
#include "llama-grammar.h"
#include "unicode.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// The three helpers json-schema-to-grammar.cpp takes from common.cpp (which would pull in all of common).
std::string string_join(const std::vector<std::string> & values, const std::string & separator) {
    std::string out;
    for (size_t i = 0; i < values.size(); i++) {
        if (i > 0) out += separator;
        out += values[i];
    }
    return out;
}

std::vector<std::string> string_split(const std::string & str, const std::string & delimiter) {
    std::vector<std::string> parts;
    size_t start = 0, end;
    while ((end = str.find(delimiter, start)) != std::string::npos) {
        parts.push_back(str.substr(start, end - start));
        start = end + delimiter.length();
    }
    parts.push_back(str.substr(start));
    return parts;
}

std::string string_repeat(const std::string & str, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; i++) out += str;
    return out;
}

static std::string slurp(const char * path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// As tests/test-grammar-integration.cpp: feed code points one by one, accepted when a stack is empty at the end.
static bool accepts(llama_grammar * grammar, const llama_grammar_stacks & initial, const std::string & doc) {
    llama_grammar_get_stacks(grammar) = initial;
    auto & stacks = llama_grammar_get_stacks(grammar);
    size_t offset = 0;
    while (offset < doc.size()) {
        size_t len = common_utf8_sequence_length(static_cast<unsigned char>(doc[offset]));
        if (len == 0 || offset + len > doc.size() || !common_utf8_is_complete(doc.substr(offset, len))) {
            return false;
        }
        std::string piece = doc.substr(offset, len);
        offset += len;
        try {
            llama_grammar_accept_token(*grammar, 0, piece);
        } catch (const std::runtime_error &) {
            return false;
        }
        if (stacks.empty()) return false;
    }
    for (const auto & s : stacks) {
        if (s.empty()) return true;
    }
    return false;
}

int main(int argc, char ** argv) {
    if (argc >= 3 && std::string(argv[1]) == "gbnf") {
        try {
            common_json schema = common_json::parse(slurp(argv[2]));
            std::string g = json_schema_to_grammar(schema, true);
            fwrite(g.data(), 1, g.size(), stdout);
            return 0;
        } catch (const std::exception & e) {
            fprintf(stderr, "%s\n", e.what());
            return 2;
        }
    }
    if (argc >= 3 && std::string(argv[1]) == "match") {
        std::string g = slurp(argv[2]);
        llama_grammar * grammar = llama_grammar_init_impl(nullptr, g.c_str(), "root", false, nullptr, 0, nullptr, 0);
        if (grammar == nullptr) {
            fprintf(stderr, "grammar does not parse\n");
            return 3;
        }
        const llama_grammar_stacks initial = llama_grammar_get_stacks(grammar);
        for (int i = 3; i < argc; i++) {
            printf("%d\n", accepts(grammar, initial, slurp(argv[i])) ? 1 : 0);
        }
        llama_grammar_free_impl(grammar);
        return 0;
    }
    fprintf(stderr, "usage: %s gbnf SCHEMA | match GRAMMAR DOC...\n", argv[0]);
    return 1;
}
