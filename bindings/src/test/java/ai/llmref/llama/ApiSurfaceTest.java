package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The safe API ({@code ai.llmref.llama}) shows no FFM type ({@code java.lang.foreign}) and no
 * generated binding ({@code ai.llmref.bindings.ffi}) in any public or protected signature: its
 * users never hold native memory. ({@code ai.llmref.llama.internal} is public only so that the
 * API's classes can use it across packages; it is not API.)
 */
class ApiSurfaceTest {

    @Test
    void noNativeTypeInAnyPublicSignature() throws Exception {
        Path dir = Path.of(LlamaModel.class.getProtectionDomain().getCodeSource().getLocation().toURI()).resolve("ai/llmref/llama");
        List<Class<?>> classes = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".class")).toList()) {
                String name = f.getFileName().toString();
                classes.add(Class.forName("ai.llmref.llama." + name.substring(0, name.length() - 6), false, getClass().getClassLoader()));
            }
        }
        List<String> exposed = new ArrayList<>();
        int checked = 0;
        for (Class<?> c : classes) {
            if (!visible(c)) {
                continue;
            }
            checked++;
            for (Method m : c.getDeclaredMethods()) {
                if (visible(m.getModifiers()) && !m.isSynthetic()) {
                    check(c, m, m.getGenericReturnType(), exposed);
                    checkParameters(c, m, exposed);
                }
            }
            for (Constructor<?> k : c.getDeclaredConstructors()) {
                if (visible(k.getModifiers()) && !k.isSynthetic()) {
                    checkParameters(c, k, exposed);
                }
            }
            for (Field f : c.getDeclaredFields()) {
                if (visible(f.getModifiers()) && !f.isSynthetic()) {
                    check(c, f, f.getGenericType(), exposed);
                }
            }
            if (c.isRecord()) {
                for (RecordComponent r : c.getRecordComponents()) {
                    check(c, r, r.getGenericType(), exposed);
                }
            }
        }
        assertThat(checked).as("public classes of ai.llmref.llama found").isGreaterThan(20);
        assertThat(exposed).isEmpty();
    }

    private static boolean visible(Class<?> c) {
        for (Class<?> k = c; k != null; k = k.getEnclosingClass()) {
            if (!Modifier.isPublic(k.getModifiers())) {
                return false;
            }
        }
        return true;
    }

    private static boolean visible(int modifiers) {
        return Modifier.isPublic(modifiers) || Modifier.isProtected(modifiers);
    }

    private static void checkParameters(Class<?> c, Executable e, List<String> exposed) {
        for (Type t : e.getGenericParameterTypes()) {
            check(c, e, t, exposed);
        }
        for (Type t : e.getGenericExceptionTypes()) {
            check(c, e, t, exposed);
        }
    }

    private static void check(Class<?> c, Object member, Type t, List<String> exposed) {
        String name = t.getTypeName();
        if (name.contains("java.lang.foreign.") || name.contains("ai.llmref.bindings.") || name.contains("ai.llmref.llama.internal.")) {
            exposed.add(c.getName() + ": " + member + " shows " + name);
        }
    }
}
