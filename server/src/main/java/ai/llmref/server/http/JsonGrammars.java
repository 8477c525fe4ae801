package ai.llmref.server.http;

/** GBNF grammars the server enforces for structured output. */
final class JsonGrammars {
    private JsonGrammars() {}

    /** Any JSON object (response_format json_object): RFC 8259 syntax, bounded whitespace. */
    static final String JSON_OBJECT = """
            root   ::= object
            value  ::= object | array | string | number | ("true" | "false" | "null") ws
            object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
            array  ::= "[" ws ( value ("," ws value)* )? "]" ws
            string ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\"" ws
            number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,16})? ws
            ws     ::= | " " | "\\n" [ \\t]{0,20}
            """;
}
