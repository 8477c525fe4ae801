package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bounds on a {@code number} (integers and decimals), differentially: for each schema, many number texts around
 * its bounds go through the converter's grammar in llama.cpp's grammar engine, which must accept
 * exactly the valid JSON number texts within the bounds (compared here with BigDecimal) that have
 * no exponent and at most 16 digits before and after the point; the output check must agree with
 * the bounds on every valid JSON number text (exponents included).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class NumberRangeGrammarTest {
    /** JSON's number syntax (RFC 8259). */
    private static final Pattern JSON_NUMBER = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?");
    /** What the grammar writes of a number: no exponent, at most 16 digits on either side of the point. */
    private static final Pattern WRITTEN = Pattern.compile("-?(0|[1-9][0-9]{0,15})(\\.[0-9]{1,16})?");
    private static final String[] FRACTIONS = {"", ".0", ".00", ".000", ".5", ".01", ".1", ".999", ".0000000000000001",
            ".0000000000000000", ".9999999999999999", ".00000000000000001", ".00000000000000000", "."};

    private GrammarReference ref;

    @BeforeAll
    void build() throws Exception {
        ref = GrammarReference.build();
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "{\"type\":\"number\",\"minimum\":0,\"maximum\":1}",
            "{\"type\":\"number\",\"minimum\":-5,\"maximum\":5}",
            "{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":100}",
            "{\"type\":\"number\",\"minimum\":-1,\"exclusiveMaximum\":0}",
            "{\"type\":\"number\",\"maximum\":10}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-3}",
            "{\"type\":\"number\",\"minimum\":0}",
            "{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}",
            "{\"type\":\"number\",\"minimum\":0,\"exclusiveMinimum\":0,\"maximum\":1,\"exclusiveMaximum\":2}",
            "{\"type\":\"number\",\"minimum\":3,\"maximum\":3}",
            "{\"type\":\"number\",\"minimum\":0,\"maximum\":0}",
            "{\"type\":\"number\",\"exclusiveMaximum\":-2}",
            "{\"type\":\"number\",\"minimum\":-12,\"exclusiveMaximum\":-9}",
            "{\"type\":\"number\",\"exclusiveMinimum\":99,\"exclusiveMaximum\":1001}",
            "{\"type\":\"number\",\"minimum\":1.0,\"maximum\":1e2}",
            "{\"type\":\"number\",\"minimum\":-1e30,\"maximum\":9999999999999999}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-9999999999999999,\"exclusiveMaximum\":1e20}",
            "{\"type\":\"number\",\"minimum\":0.5,\"maximum\":2.25}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-1.25,\"exclusiveMaximum\":0.5}",
            "{\"type\":\"number\",\"minimum\":-3.14159,\"maximum\":-1e-3}",
            "{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":0.5}",
            "{\"type\":\"number\",\"minimum\":0.25,\"maximum\":0.75}",
            "{\"type\":\"number\",\"exclusiveMinimum\":0.25,\"exclusiveMaximum\":0.2500001}",
            "{\"type\":\"number\",\"minimum\":2.5e-1,\"exclusiveMaximum\":2.5e1}",
            "{\"type\":\"number\",\"maximum\":-0.5}",
            "{\"type\":\"number\",\"exclusiveMinimum\":99.99}",
            "{\"type\":\"number\",\"minimum\":-0.0000000000000001,\"maximum\":0.0000000000000001}",
            "{\"type\":\"number\",\"exclusiveMinimum\":0.12345678901234567,\"maximum\":1.9999999999999998}",
            "{\"type\":\"number\",\"minimum\":1e-20,\"maximum\":1}",
            "{\"type\":\"number\",\"exclusiveMaximum\":-1e-20}",
            "{\"type\":\"number\",\"minimum\":0.5,\"maximum\":0.5}",
            "{\"type\":\"number\",\"minimum\":123456789012.3456,\"exclusiveMaximum\":123456789013.5}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-7.3,\"minimum\":-7.25,\"maximum\":7.3,\"exclusiveMaximum\":7.25}",
            "{\"type\":\"number\",\"minimum\":0.1,\"exclusiveMaximum\":0.30000000000000004}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-0.5,\"exclusiveMaximum\":0}",
            "{\"type\":\"number\",\"minimum\":-0.5,\"maximum\":0}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-0.999,\"maximum\":-0.0999}"})
    void acceptsExactlyTheNumbersWithinTheBounds(String schemaText) throws Exception {
        JsonNode schema = SchemaCorpus.MAPPER.readTree(schemaText);
        String grammar = JsonSchemaGrammar.convert(schema);
        List<String> docs = new ArrayList<>(candidates(schema));
        boolean[] accepted = ref.accepts(grammar, docs);
        int in = 0;
        for (int i = 0; i < docs.size(); i++) {
            String d = docs.get(i);
            boolean json = JSON_NUMBER.matcher(d).matches();
            boolean within = json && within(schema, new BigDecimal(d));
            boolean expected = within && WRITTEN.matcher(d).matches();
            assertThat(accepted[i]).as("%s: %s%n%s", schemaText, d, grammar).isEqualTo(expected);
            if (json) {
                List<String> errors = SchemaValidator.validate(schema, SchemaValidator.read(d));
                assertThat(errors.isEmpty()).as("%s: the output check on %s: %s", schemaText, d, errors).isEqualTo(within);
            }
            in += expected ? 1 : 0;
        }
        assertThat(in).as("numbers accepted").isPositive();
        assertThat(docs.size() - in).as("numbers rejected").isGreaterThan(5);
    }

    /**
     * Decimal bounds that admit no number the grammar writes are refused, naming the first bound:
     * (0, 1e-17) holds numbers, but none of at most 16 digits after the point.
     */
    @ParameterizedTest
    @ValueSource(strings = {
            "{\"type\":\"number\",\"minimum\":0.5,\"exclusiveMaximum\":0.5}",
            "{\"type\":\"number\",\"exclusiveMinimum\":-1.25,\"maximum\":-1.25}",
            "{\"type\":\"number\",\"minimum\":2.75,\"maximum\":2.5}",
            "{\"type\":\"number\",\"minimum\":-0.25,\"maximum\":-0.5}",
            "{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1e-17}"})
    void decimalBoundsThatAdmitNoNumberAreRefused(String schemaText) throws Exception {
        JsonNode schema = SchemaCorpus.MAPPER.readTree(schemaText);
        List<String> keys = new ArrayList<>();
        schema.fieldNames().forEachRemaining(keys::add);
        // each schema writes its lower bound first, after "type"
        String lower = keys.get(1);
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(schema)).isInstanceOfSatisfying(SchemaException.class, e -> {
            assertThat(e.getMessage()).contains("the bounds on a 'number' admit no value").contains("#/" + lower);
            assertThat(e.keyword()).isEqualTo(lower);
            assertThat(e.pointer()).isEqualTo("/" + lower);
        });
    }

    /** Number texts around the bounds, 0 and the 16-digit limit, with and without fractions, signs and exponents, and malformed ones. */
    private static Set<String> candidates(JsonNode schema) {
        Set<BigDecimal> integers = new LinkedHashSet<>();
        List<BigDecimal> near = new ArrayList<>(List.of(BigDecimal.ZERO, new BigDecimal("9999999999999999"),
                new BigDecimal("-9999999999999999"), BigDecimal.TEN, BigDecimal.valueOf(100)));
        Set<String> out = new LinkedHashSet<>();
        for (String k : SchemaKeywords.NUMBER_WORDS) {
            if (schema.has(k) && schema.get(k).decimalValue().abs().compareTo(new BigDecimal("1e17")) < 0) {
                BigDecimal b = schema.get(k).decimalValue();
                near.add(b.setScale(0, RoundingMode.FLOOR));
                near.add(b.setScale(0, RoundingMode.CEILING));
                out.addAll(nearDecimal(b));
            }
        }
        for (BigDecimal b : near) {
            for (int d = -3; d <= 3; d++) {
                integers.add(b.add(BigDecimal.valueOf(d)));
            }
        }
        for (BigDecimal i : integers) {
            String digits = i.abs().toPlainString();
            for (String f : FRACTIONS) {
                out.add((i.signum() < 0 ? "-" : "") + digits + f);
                if (i.signum() == 0) {
                    out.add("-0" + f);
                }
            }
            out.add(digits.equals("0") ? "00" : "0" + digits);
            out.add("-0" + digits);
            out.add("+" + digits);
            out.add(i.toPlainString() + "e0");
            out.add(i.toPlainString() + "E+1");
            out.add(i.toPlainString() + ".5e-1");
        }
        out.addAll(List.of("-", "", ".5", "-.5", "1.5.0", "0x1", "1 ", " 1", "01.5", "-00.0", "0.5e1", "50e-2", "1E-1"));
        return out;
    }

    /**
     * Number texts around a bound: the bound and its negation, the bound plus and minus 10^-k (k
     * up to 18), rounded up and down to each number of digits after the point, and its last digit
     * moved by one; each as written and with trailing zeros, and "-0..." for those of value 0.
     */
    private static Set<String> nearDecimal(BigDecimal b) {
        List<BigDecimal> values = new ArrayList<>(List.of(b, b.negate()));
        for (int k = 0; k <= 18; k++) {
            values.add(b.add(BigDecimal.ONE.movePointLeft(k)));
            values.add(b.subtract(BigDecimal.ONE.movePointLeft(k)));
            values.add(b.setScale(k, RoundingMode.FLOOR));
            values.add(b.setScale(k, RoundingMode.CEILING));
        }
        BigDecimal ulp = b.ulp();
        values.add(b.add(ulp));
        values.add(b.subtract(ulp));
        Set<String> out = new LinkedHashSet<>();
        for (BigDecimal v : values) {
            for (BigDecimal w : List.of(v, v.stripTrailingZeros())) {
                String plain = w.toPlainString();
                String point = plain.contains(".") ? plain : plain + ".";
                for (String text : List.of(plain, point + "0", point + "000")) {
                    out.add(text);
                    if (w.signum() == 0) {
                        out.add("-" + text);
                    }
                }
            }
        }
        return out;
    }

    /** Whether v meets every bound of the schema, by BigDecimal. */
    private static boolean within(JsonNode schema, BigDecimal v) {
        boolean ok = true;
        for (String k : SchemaKeywords.NUMBER_WORDS) {
            if (schema.has(k)) {
                int c = v.compareTo(schema.get(k).decimalValue());
                ok &= switch (k) {
                    case "minimum" -> c >= 0;
                    case "maximum" -> c <= 0;
                    case "exclusiveMinimum" -> c > 0;
                    default -> c < 0;
                };
            }
        }
        return ok;
    }
}
