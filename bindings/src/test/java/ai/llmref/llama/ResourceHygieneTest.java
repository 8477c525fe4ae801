package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Loading and freeing models and contexts many times leaves native memory and descriptors flat. */
class ResourceHygieneTest {

    @Test
    void loadAndFreeManyTimes() throws IOException {
        cycle(30); // warm up: first-time allocations (backend, JIT, libc arenas) are not leaks
        long mallocBefore = mallocInUse();
        long mapsBefore = mappings();
        long fdsBefore = openFds();
        long rssBefore = rssKiB();
        // 200 cycles in four windows, the heap in use read after each: the JVM's own native
        // allocations (the JIT compilers' arenas) come and go by tens of MiB between two reads
        // (seen: +19 MiB in one run, -9 MiB in another), while a leak only grows.
        long[] malloc = new long[4];
        for (int w = 0; w < malloc.length; w++) {
            cycle(50);
            malloc[w] = mallocInUse();
        }
        long mapsAfter = mappings();
        long fdsAfter = openFds();
        long rssAfter = rssKiB();
        long lowest = java.util.Arrays.stream(malloc).min().orElseThrow();
        System.out.printf("hygiene after 200 load/use/free cycles: malloc in use %d -> %s bytes, mappings %d -> %d,"
                + " fds %d -> %d, RSS %d -> %d KiB%n", mallocBefore, java.util.Arrays.toString(malloc), mapsBefore, mapsAfter,
                fdsBefore, fdsAfter, rssBefore, rssAfter);
        assertThat(fdsAfter).as("open file descriptors").isLessThanOrEqualTo(fdsBefore + 2);
        // The model file is mmapped: a leaked model would leave one mapping per cycle.
        assertThat(mapsAfter - mapsBefore).as("new memory mappings").isLessThan(40);
        // A cycle allocates about 25 MiB on the native heap (measured: the model 1-8 MiB, context,
        // batch and sampler 23.5 MiB). A leak of even a twentieth of that would put every read at
        // least 50 cycles' worth (over 50 MiB) above the start, so the lowest of the four reads must
        // be within noise of it.
        assertThat(lowest - mallocBefore).as("native heap growth in bytes at the lowest of four reads").isLessThan(16L << 20);
    }

    private static void cycle(int times) {
        for (int i = 0; i < times; i++) {
            try (LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params())) {
                try (LlamaContext c = m.newContext(TestModels.small(1)); Batch b = c.newBatch(8);
                        Sampler s = Sampler.builder(m.vocabulary()).topK(40).temperature(0.8f).seed(i).build()) {
                    int[] prompt = m.vocabulary().tokenize("Once upon a time", true, false);
                    for (int k = 0; k < prompt.length; k++) {
                        b.add(prompt[k], k, 0, k == prompt.length - 1);
                    }
                    c.decode(b);
                    assertThat(s.sample(c, prompt.length - 1)).isBetween(0, 511);
                }
            }
        }
    }

    private static final StructLayout MALLINFO2 = MemoryLayout.structLayout(IntStream.range(0, 10)
            .mapToObj(i -> ValueLayout.JAVA_LONG.withName("f" + i)).toArray(MemoryLayout[]::new));
    private static final MethodHandle MALLINFO = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("mallinfo2").orElseThrow(), FunctionDescriptor.of(MALLINFO2));

    /** glibc's bytes in use: small allocations (uordblks) plus mmapped large ones (hblkhd). */
    static long mallocInUse() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = (MemorySegment) MALLINFO.invokeExact((SegmentAllocator) a);
            return s.getAtIndex(ValueLayout.JAVA_LONG, 7) + s.getAtIndex(ValueLayout.JAVA_LONG, 4);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    static long mappings() throws IOException {
        return Files.readAllLines(Path.of("/proc/self/maps")).size();
    }

    static long rssKiB() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }
}
