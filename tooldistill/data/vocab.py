"""Word lists the query templates draw their slot values from (cities, topics, words, phrases, units, ...).

Plain data, kept apart from the sentence frames in :mod:`templates` so either can grow without the other. Lists are
tuples (ordered), never sets: generation must not depend on hash order, or a seed would not reproduce.
"""

from __future__ import annotations

CITIES = (
    "Tokyo", "Paris", "London", "New York", "Berlin", "Madrid", "Rome", "Lisbon", "Dublin", "Amsterdam",
    "Brussels", "Vienna", "Prague", "Budapest", "Warsaw", "Krakow", "Oslo", "Stockholm", "Helsinki", "Copenhagen",
    "Reykjavik", "Athens", "Istanbul", "Cairo", "Nairobi", "Lagos", "Accra", "Cape Town", "Johannesburg",
    "Casablanca", "Marrakech", "Tunis", "Dubai", "Abu Dhabi", "Doha", "Riyadh", "Tel Aviv", "Amman", "Tehran",
    "Karachi", "Lahore", "Delhi", "New Delhi", "Mumbai", "Bangalore", "Chennai", "Kolkata", "Hyderabad",
    "Kathmandu", "Dhaka", "Colombo", "Bangkok", "Chiang Mai", "Hanoi", "Ho Chi Minh City", "Phnom Penh",
    "Kuala Lumpur", "Singapore", "Jakarta", "Bali", "Manila", "Cebu", "Hong Kong", "Taipei", "Shanghai", "Beijing",
    "Shenzhen", "Guangzhou", "Chengdu", "Seoul", "Busan", "Osaka", "Kyoto", "Sapporo", "Fukuoka", "Sydney",
    "Melbourne", "Brisbane", "Perth", "Adelaide", "Auckland", "Wellington", "Christchurch", "Honolulu",
    "Los Angeles", "San Francisco", "San Diego", "Seattle", "Portland", "Las Vegas", "Phoenix", "Denver",
    "Austin", "Dallas", "Houston", "San Antonio", "Chicago", "Detroit", "Minneapolis", "St. Louis", "Nashville",
    "Atlanta", "Miami", "Orlando", "Tampa", "New Orleans", "Boston", "Philadelphia", "Pittsburgh", "Baltimore",
    "Washington DC", "Charlotte", "Raleigh", "Salt Lake City", "Anchorage", "Toronto", "Montreal", "Vancouver",
    "Calgary", "Ottawa", "Quebec City", "Mexico City", "Guadalajara", "Cancun", "Havana", "San Juan", "Bogota",
    "Medellin", "Lima", "Cusco", "Quito", "Santiago", "Buenos Aires", "Montevideo", "Sao Paulo", "Rio de Janeiro",
    "Manchester", "Liverpool", "Edinburgh", "Glasgow", "Cardiff", "Belfast", "Bristol", "Leeds", "Birmingham",
    "Lyon", "Marseille", "Nice", "Bordeaux", "Toulouse", "Munich", "Hamburg", "Frankfurt", "Cologne", "Zurich",
    "Geneva", "Basel", "Milan", "Naples", "Florence", "Venice", "Turin", "Barcelona", "Seville", "Valencia",
    "Porto", "Rotterdam", "Antwerp", "Gothenburg", "Bergen", "Tallinn", "Riga", "Vilnius", "Bucharest", "Sofia",
    "Belgrade", "Zagreb", "Ljubljana", "Split", "Dubrovnik", "Kyiv", "Tbilisi", "Yerevan", "Baku", "Almaty",
    "Tashkent", "Ulaanbaatar", "Paris, Texas", "Portland, Maine", "Springfield", "Cambridge", "Oxford", "Bath",
    "Yosemite", "the Grand Canyon", "Lake Tahoe", "Aspen", "Banff", "Zermatt", "Chamonix", "Santorini", "Mykonos",
)

TIMEZONES = (
    "UTC", "GMT", "PST", "EST", "CST", "MST", "CET", "EET", "IST", "JST", "AEST", "BST", "Pacific time",
    "Eastern time", "Central European time", "Tokyo time", "London time", "New York time",
)

PEOPLE = (
    "Albert Einstein", "Marie Curie", "Isaac Newton", "Ada Lovelace", "Alan Turing", "Nikola Tesla", "Leonardo da Vinci",
    "Frida Kahlo", "Vincent van Gogh", "Pablo Picasso", "William Shakespeare", "Jane Austen", "Leo Tolstoy",
    "Toni Morrison", "Gabriel Garcia Marquez", "Confucius", "Cleopatra", "Julius Caesar", "Genghis Khan",
    "Napoleon", "Queen Victoria", "Abraham Lincoln", "Nelson Mandela", "Mahatma Gandhi", "Martin Luther King Jr.",
    "Simon Bolivar", "Charles Darwin", "Galileo Galilei", "Rosalind Franklin", "Katherine Johnson",
    "Mozart", "Beethoven", "Hypatia", "Ibn Battuta", "Marco Polo", "Amelia Earhart", "Grace Hopper",
)

TOPICS = (
    "the Roman Empire", "the Ottoman Empire", "the French Revolution", "the Industrial Revolution",
    "the Renaissance", "the Cold War", "World War I", "the Apollo program", "the Silk Road", "the Ming dynasty",
    "the Byzantine Empire", "the Aztec Empire", "the Inca Empire", "ancient Egypt", "the Great Wall of China",
    "the Eiffel Tower", "Machu Picchu", "the Colosseum", "Stonehenge", "Angkor Wat", "the Taj Mahal",
    "the Amazon rainforest", "the Sahara", "Mount Everest", "the Mariana Trench", "the Great Barrier Reef",
    "Lake Baikal", "the Dead Sea", "Antarctica", "Greenland", "Iceland", "Madagascar", "Mongolia", "Bhutan",
    "photosynthesis", "plate tectonics", "black holes", "quantum entanglement", "general relativity",
    "the Big Bang", "dark matter", "CRISPR", "DNA replication", "the immune system", "climate change",
    "the water cycle", "volcanoes", "tsunamis", "the Fibonacci sequence", "prime numbers", "game theory",
    "blockchain", "machine learning", "the transistor", "the printing press", "the steam engine", "the Internet",
    "Linux", "Wikipedia", "the Olympic Games", "the FIFA World Cup", "the Tour de France", "jazz",
    "baroque music", "impressionism", "cubism", "the Beatles", "the Mona Lisa",
    "the Odyssey", "Don Quixote", "the Hubble Space Telescope", "the James Webb Space Telescope", "Saturn",
    "the Moon landing", "the International Space Station", "the Voyager probes", "penguins", "octopuses",
    "blue whales", "honeybees", "tardigrades", "the giant panda", "the monarch butterfly", "sourdough bread",
    "the history of coffee", "the origin of chess", "sushi", "the Maya civilization", "the Vikings",
    "the Black Death", "the Magna Carta", "the United Nations", "the European Union", "NATO", "the Nobel Prize",
)

AMBIGUOUS_TOPICS = (
    "Python", "Java", "Mercury", "Jaguar", "Apple", "Amazon", "Mars", "Turkey", "Jupiter", "Corona", "Rust",
    "Go", "Swift", "Ruby", "Orange", "Phoenix", "Venus", "Shell", "Dove", "Oracle", "Pluto", "Nile", "Georgia",
    "Jordan", "Chad", "Nike", "Tesla", "Bolt", "Zoom", "Slack", "Delta", "Saturn", "Pandora", "Atlas", "Titan",
)

CONCEPTS = (
    "inflation", "entropy", "democracy", "capitalism", "osmosis", "gravity", "evolution", "photosynthesis",
    "recession", "algorithm", "metabolism", "nihilism", "stoicism", "socialism", "diffusion", "mitochondria",
    "black holes", "neutron stars", "isotopes", "sonnets", "haiku", "existentialism", "utilitarianism",
    "supernovae", "hedge funds", "index funds", "cryptocurrency", "vaccines", "enzymes", "catalysts",
)

WORDS = (
    "serendipity", "ephemeral", "ubiquitous", "quixotic", "sonder", "petrichor", "ineffable", "mellifluous",
    "laconic", "obfuscate", "pernicious", "sycophant", "cacophony", "juxtapose", "ennui", "zeitgeist",
    "schadenfreude", "wanderlust", "hubris", "pragmatic", "esoteric", "gregarious", "magnanimous", "nefarious",
    "obsequious", "perfunctory", "recalcitrant", "sanguine", "taciturn", "vicarious", "anachronism", "benevolent",
    "capricious", "diligent", "eloquent", "facetious", "garrulous", "idiosyncratic", "impetuous", "insidious",
    "loquacious", "meticulous", "nonchalant", "ostentatious", "paradigm", "quintessential", "resilient",
    "superfluous", "tenacious", "unctuous", "verbose", "whimsical", "acquiesce", "ambivalent", "ameliorate",
    "arbitrary", "austere", "cogent", "conundrum", "candor", "dichotomy", "disparate", "ebullient", "egregious",
    "emulate", "enigma", "epitome", "exacerbate", "fastidious", "frugal", "gratuitous", "hackneyed", "iconoclast",
    "immutable", "incongruous", "innocuous", "intrepid", "lethargic", "lucid", "malleable", "mundane", "myriad",
    "nostalgia", "oblivious", "palpable", "paradox", "placate", "plethora", "precocious", "prolific", "querulous",
    "rhetoric", "sagacious", "scrutinize", "solace", "spurious", "stoic", "surreptitious", "tangential",
    "tenuous", "trepidation", "ubiquity", "vex", "vindicate", "vociferous", "wane", "zealous", "apricity",
    "defenestration", "limerence", "halcyon", "susurrus", "vellichor", "aplomb", "bamboozle", "cantankerous",
    "discombobulate", "flabbergasted", "gobbledygook", "hullabaloo", "kerfuffle", "lollygag", "brouhaha",
    "persnickety", "skedaddle", "gumption", "moxie", "chutzpah", "hygge", "umami", "fiduciary", "amortize",
    "heuristic", "idempotent", "ontology", "epistemology", "hermeneutics", "syzygy", "onomatopoeia", "oxymoron",
    "metaphor", "alliteration", "hyperbole", "irony", "satire", "allegory", "euphemism", "synecdoche", "litotes",
    "benign", "candid", "deference", "elated", "feasible", "gullible", "hinder", "imminent", "jovial", "keen",
    "lament", "mediocre", "novice", "opaque", "pensive", "quaint", "rapport", "subtle", "tedious", "vivid",
)

SHORT_PHRASES = (
    "hello", "goodbye", "thank you", "good night", "good morning", "cheers", "sorry", "yes", "no", "please",
    "welcome", "happy birthday", "I love you", "congratulations", "excuse me", "bon appetit", "see you later",
)

PHRASES = (
    "good morning", "thank you very much", "where is the train station", "how much does this cost",
    "I would like a coffee please", "where is the bathroom", "nice to meet you", "can you help me",
    "I don't understand", "do you speak English", "the bill, please", "I am lost", "what time does the museum open",
    "I have a reservation", "my name is Anna", "I am allergic to peanuts", "how are you", "see you tomorrow",
    "happy new year", "merry Christmas", "good luck on your exam", "the weather is beautiful today",
    "I need a doctor", "where can I buy a ticket", "is this seat taken", "one beer, please",
    "could you speak more slowly", "I am a vegetarian", "we would like a table for four", "what do you recommend",
    "the food was delicious", "I missed my flight", "how do I get to the airport", "is breakfast included",
    "call the police", "I lost my passport", "may I take a photo", "the meeting is postponed until Monday",
    "please send me the report by Friday", "thanks for your patience", "the package arrived damaged",
    "we are closed on Sundays", "keep the change", "I will be there in ten minutes", "it is raining cats and dogs",
    "practice makes perfect", "better late than never", "where is the nearest pharmacy", "I love this city",
    "can I pay by card", "the train is delayed", "have a nice weekend", "good night and sweet dreams",
    "welcome to our home", "please turn left at the next corner", "how long does it take",
    "what is your favorite book", "the children are playing in the garden", "I forgot my umbrella",
    "let's meet at the station at noon", "this is my first time here", "do you have a map",
)

LANGUAGES = (
    "Japanese", "French", "Spanish", "German", "Italian", "Portuguese", "Dutch", "Swedish", "Norwegian", "Danish",
    "Finnish", "Polish", "Czech", "Hungarian", "Greek", "Turkish", "Russian", "Ukrainian", "Arabic", "Hebrew",
    "Persian", "Hindi", "Bengali", "Urdu", "Tamil", "Thai", "Vietnamese", "Indonesian", "Malay", "Tagalog",
    "Korean", "Mandarin", "Chinese", "Cantonese", "Swahili", "Zulu", "Icelandic", "Irish", "Welsh", "Catalan",
    "Romanian", "Bulgarian", "Croatian", "Serbian", "Latin", "Esperanto",
)

# (unit names as users write them, grouped so a conversion stays within one dimension)
UNIT_GROUPS = (
    ("km", "kilometers", "miles", "mi", "meters", "m", "feet", "ft", "yards", "inches", "cm", "centimeters"),
    ("kg", "kilograms", "pounds", "lbs", "grams", "g", "ounces", "oz", "stone", "tonnes"),
    ("celsius", "fahrenheit", "kelvin", "°C", "°F"),
    ("liters", "litres", "gallons", "ml", "milliliters", "cups", "pints", "quarts", "fluid ounces", "tablespoons"),
    ("km/h", "mph", "m/s", "knots", "kilometers per hour", "miles per hour"),
    ("hours", "minutes", "seconds", "days", "weeks"),
    ("square meters", "square feet", "acres", "hectares", "sq ft"),
    ("bytes", "kilobytes", "megabytes", "gigabytes", "terabytes", "MB", "GB"),
)

DATES = (
    "Christmas", "New Year's Day", "Halloween", "Valentine's Day", "Thanksgiving", "Easter", "March 3",
    "April 15", "May 1", "June 21", "July 4", "August 9", "September 30", "October 12", "November 11",
    "December 24", "2026-05-01", "2025-12-31", "2027-01-15", "January 1, 2030", "Feb 14", "next Friday",
    "the 23rd", "March 14 2026", "10/31/2025", "31 October 2026", "Labor Day", "Mother's Day", "the summer solstice",
)

HISTORIC_DATES = (
    "July 4, 1776", "July 20, 1969", "November 9, 1989", "December 7, 1941", "January 1, 2000", "June 6, 1944",
    "October 29, 1929", "April 14, 1912", "September 11, 2001", "August 6, 1945", "May 8, 1945", "March 15, 44 BC",
    "February 29, 2024", "1 January 1900", "25 December 1990", "12 October 1492", "2000-02-29", "1999-12-31",
)

TIMES = ("3pm", "9am", "noon", "midnight", "10:30", "7:45 pm", "14:00", "8 in the morning", "6pm", "11:15am")

DOMAINS = (
    "bbc.com", "nytimes.com", "theguardian.com", "example.com", "medium.com", "github.com", "arxiv.org",
    "en.wikipedia.org", "reuters.com", "techcrunch.com", "nature.com", "blog.python.org", "docs.python.org",
    "stackoverflow.com", "news.ycombinator.com", "substack.com", "wired.com", "theverge.com", "cnn.com",
    "npr.org", "economist.com", "arstechnica.com", "mozilla.org", "openai.com", "huggingface.co", "dev.to",
)
URL_WORDS = (
    "news", "blog", "article", "posts", "2025", "2026", "tech", "science", "world", "business", "guide", "review",
    "release-notes", "how-to", "ai", "climate", "health", "sports", "opinion", "research", "abs", "docs", "intro",
    "tutorial", "changelog", "faq", "pricing", "about", "report", "summary", "update", "index",
)

SEARCH_SUBJECTS = (
    "iPhone 17", "Pixel 10", "Galaxy S26", "Steam Deck 2", "Nintendo Switch 2", "MacBook Air M4", "Kindle Scribe",
    "Tesla Model Y", "Sony WH-1000XM6", "Dyson V15", "GoPro Hero 13", "AirPods Pro 3", "Framework laptop",
    "Rivian R2", "Garmin Forerunner 965", "Vision Pro", "RTX 5090", "Ryzen 9 9950X", "Raspberry Pi 5", "Roomba j9",
)
COMPANIES = (
    "Apple", "Nvidia", "Microsoft", "Tesla", "Amazon", "Alphabet", "Meta", "Netflix", "Spotify", "Airbnb", "Uber",
    "Shopify", "Toyota", "Samsung", "Sony", "Nintendo", "Intel", "AMD", "Salesforce", "Adobe", "Boeing", "Pfizer",
)
TEAMS = (
    "Lakers", "Celtics", "Warriors", "Yankees", "Dodgers", "Red Sox", "Real Madrid", "Barcelona", "Arsenal",
    "Liverpool", "Manchester United", "Bayern Munich", "PSG", "Juventus", "Chiefs", "Eagles", "Packers", "Cowboys",
)
EVENTS = (
    "Champions League final", "Super Bowl", "World Series", "NBA finals", "Wimbledon", "US Open", "Tour de France",
    "Oscars", "Grammys", "Eurovision", "Nobel Peace Prize", "Booker Prize", "Formula 1 race", "Met Gala",
    "election", "marathon", "chess championship", "Australian Open",
)
THINGS = (
    "ramen", "pizza", "coffee shops", "bookstores", "hiking trails", "museums", "sushi", "tacos", "vegan restaurants",
    "rooftop bars", "bakeries", "parks", "escape rooms", "co-working spaces", "jazz clubs", "farmers markets",
    "climbing gyms", "dim sum", "brunch spots", "thrift stores",
)
MOVIES = (
    "Dune Part Three", "The Batman Part II", "Avatar 3", "Toy Story 5", "Spider-Man 4", "Frozen 3", "Shrek 5",
    "The Odyssey", "Mission Impossible", "Inside Out 3", "Zootopia 2", "Wicked For Good",
)
SEARCH_PATTERNS = (
    "{subject} reviews", "{subject} price", "{subject} release date", "best deals on {subject}",
    "{subject} vs {subject2}", "{company} stock price", "{company} earnings report", "{company} layoffs",
    "latest news about {company}", "{team} score last night", "{team} next game", "who won the {event}",
    "{event} {year} results", "{event} tickets", "best {thing} in {city}", "cheap flights from {city} to {city2}",
    "hotels near {city} airport", "{movie} showtimes", "{movie} reviews", "{city} events this weekend",
    "{city} traffic right now", "is {company} hiring", "{subject} battery life", "{subject} problems",
    "open {thing} near {city}", "{year} {event} winner", "{company} CEO", "{subject} discount code",
    "current {company} market cap", "{city} marathon {year}", "train strike {city}", "{city} rent prices {year}",
)
YEARS = ("2023", "2024", "2025", "2026")

WRITING_FORMS = (
    "poem", "haiku", "limerick", "short story", "sonnet", "blog post", "tweet", "toast", "speech", "cover letter",
    "product description", "song", "rap verse", "bedtime story", "wedding speech", "thank-you note", "LinkedIn post",
    "apology letter", "birthday message", "essay outline", "slogan", "riddle", "dialogue", "newsletter intro",
)
WRITING_SUBJECTS = (
    "autumn", "my cat", "the ocean", "friendship", "a rainy Monday", "coffee", "space travel", "my grandmother",
    "a lost sock", "the first day of school", "winter mornings", "a robot who learns to love", "our new bakery",
    "climate hope", "remote work", "a dragon afraid of fire", "the city at night", "my best friend's wedding",
    "a startup launch", "retirement", "gardening", "a road trip", "pizza", "the moon", "learning to code",
    "my dog Biscuit", "a haunted library", "the last day of summer", "teamwork", "a volunteer program",
    "a time traveler", "the smell of rain", "my team's promotion", "a failed souffle", "marathon training",
    "the mountains", "an old lighthouse", "a quiet village", "the stock market", "a penguin in the desert",
)
EXPLAIN_SUBJECTS = (
    "recursion", "how vaccines work", "the difference between a list and a tuple", "compound interest",
    "why the sky is blue", "how a bill becomes a law", "what an API is", "object oriented programming",
    "the Monty Hall problem", "how to read a balance sheet", "the rules of cricket", "how neural networks learn",
    "what a mortgage is", "big O notation", "the offside rule", "how airplanes stay in the air",
    "supply and demand", "the difference between weather and climate", "how a refrigerator works",
    "what inflation does to savings", "the basics of music theory", "git rebase vs merge", "how tides work",
    "the prisoner's dilemma", "what DNS does", "how to solve a quadratic equation", "SQL joins",
    "the difference between affect and effect", "why we dream", "how credit scores work",
)
ACTIVITIES = (
    "running a first marathon", "studying for exams", "public speaking", "learning guitar", "sleeping better",
    "saving money", "cooking for one", "starting a vegetable garden", "job interviews", "working from home",
    "traveling with kids", "learning a new language", "staying motivated", "writing a novel", "meal prep",
    "training a puppy", "negotiating a raise", "reducing stress", "getting up early", "making friends in a new city",
)
INGREDIENTS = (
    "chicken", "rice", "eggs", "spinach", "tofu", "chickpeas", "pasta", "tomatoes", "potatoes", "salmon",
    "mushrooms", "lentils", "broccoli", "cheese", "beans", "zucchini", "leftover bread", "bananas",
)
CODE_TASKS = (
    "reverses a string", "checks if a number is prime", "merges two sorted lists", "parses a CSV file",
    "counts word frequencies", "removes duplicates from a list", "validates an email address",
    "flattens a nested list", "computes a moving average", "finds the longest common prefix",
    "sorts a dictionary by value", "reads a JSON file", "implements binary search", "generates a random password",
)
NAMES = ("Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
         "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe")
RELATIONS = ("boss", "landlord", "team", "professor", "client", "neighbor", "sister", "coach", "teacher", "manager")
ANIMALS = ("cats", "penguins", "programmers", "dinosaurs", "pirates", "accountants", "dogs", "robots", "wizards",
           "cheese", "physicists", "astronauts", "chefs", "ducks", "vampires")
FAVORITES = ("color", "movie", "book", "food", "season", "song", "animal", "holiday", "word", "city", "game")
